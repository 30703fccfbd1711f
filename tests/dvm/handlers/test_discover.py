"""Tests for dvm/handlers/__init__.py: the handler modules are found and fit the interface."""

from __future__ import annotations

import inspect

from dvm.handlers import discover


def test_discover_finds_the_handlers() -> None:
    handlers = discover()
    assert {5001, 5970, 5050} <= set(handlers)
    assert {handlers[k].name for k in (5001, 5970, 5050)} == {"summarize", "pow", "textgen"}


def test_every_handler_fits_the_interface() -> None:
    for kind, handler in discover().items():
        assert handler.kind == kind and 5000 <= kind < 6000
        assert handler.name and handler.title
        handler.check_settings({})  # the documented defaults are valid
        assert inspect.iscoroutinefunction(handler.run)
