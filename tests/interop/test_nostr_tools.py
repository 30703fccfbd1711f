"""nostr-tools (the JavaScript library most web clients use) against our relay.

Each test runs one scenario of ``nostr_tools_client.mjs`` in Node against a
relay started in-process (memory and SQLite stores) and checks what the
library saw: OK answers, events in the order received, CLOSED reasons.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relay.server import RelayServer

RunScenario = Callable[..., Awaitable[dict[str, Any]]]  # the `nostr_tools` fixture

pytestmark = pytest.mark.interop


def newest_first(events: list[dict[str, Any]]) -> list[str]:
    """NIP-01 order: created_at descending, ties by lowest id."""
    return [e["id"] for e in sorted(events, key=lambda e: (-e["created_at"], e["id"]))]


def served(fetch: dict[str, Any]) -> list[str]:
    """Ids a REQ returned, after checking it ended with EOSE and every event verified."""
    assert fetch["eose"], f"REQ closed instead of EOSE: {fetch['closed']}"
    assert fetch["invalid"] == [], "nostr-tools refused events (bad signature or filter mismatch)"
    return list(fetch["events"])


async def test_publish_and_fetch_with_filters(relay: RelayServer, nostr_tools: RunScenario) -> None:
    result = await nostr_tools(relay.url, "publish_fetch")
    events, alice, bob = result["published"], result["alice"], result["bob"]
    assert [ok["ok"] for ok in result["oks"]] == [True] * len(events), result["oks"]
    assert all(ok["reason"] == "" for ok in result["oks"])

    def matching(pred: Any) -> list[str]:
        return newest_first([e for e in events if pred(e)])

    def has_t(e: dict[str, Any]) -> bool:
        return ["t", "timmy"] in e["tags"]

    fetched = {name: served(f) for name, f in result["fetched"].items()}
    assert fetched["by_author"] == matching(lambda e: e["pubkey"] == alice)
    assert fetched["by_kind"] == matching(lambda e: e["kind"] == 7)
    assert fetched["by_tag"] == matching(has_t)
    assert fetched["by_tag_and_kind"] == matching(lambda e: has_t(e) and e["kind"] == 1)
    assert fetched["by_ids"] == newest_first([events[0], events[7]])
    since, until = events[0]["created_at"] + 1, events[0]["created_at"] + 3
    assert fetched["since_until"] == matching(
        lambda e: e["pubkey"] == alice and since <= e["created_at"] <= until
    )
    alice_notes = matching(lambda e: e["pubkey"] == alice and e["kind"] == 1)
    assert fetched["limit_2"] == alice_notes[:2]
    assert fetched["two_filters"] == matching(
        lambda e: e["pubkey"] == bob or (e["pubkey"] == alice and e["kind"] == 7)
    )

    assert result["count_by_author"] == {"ok": True, "count": 7}
    assert result["count_by_tag"] == {"ok": True, "count": 4}
    republish = result["republish"]
    assert republish["ok"] is True
    assert republish["reason"].startswith("duplicate:")


async def test_live_subscription_gets_new_event(
    relay: RelayServer, nostr_tools: RunScenario
) -> None:
    result = await nostr_tools(relay.url, "live")
    assert all(ok["ok"] for ok in result["oks"]), result["oks"]
    assert result["eose"]
    assert result["arrived"], "the live event never reached the subscriber"
    # The older event is outside `since`; the kind-7 one outside `kinds`.
    assert result["received"] == [result["fresh"]]
    assert result["invalid"] == []


async def test_replaceable_and_addressable_keep_newest(
    relay: RelayServer, nostr_tools: RunScenario
) -> None:
    result = await nostr_tools(relay.url, "replaceable")
    ids, oks = result["ids"], result["oks"]
    assert all(ok["ok"] for ok in oks.values()), oks
    # An older version than the stored one is acknowledged, not stored.
    assert oks["metaOld"]["reason"].startswith("duplicate:")
    fetched = {name: served(f) for name, f in result["fetched"].items()}
    assert fetched["metadata"] == [ids["meta2"]]
    assert fetched["addressable"] == [ids["a2"], ids["b1"]]
    assert fetched["address_a"] == [ids["a2"]]
    assert fetched["replaced_by_id"] == []


async def test_deletion_removes_events(relay: RelayServer, nostr_tools: RunScenario) -> None:
    result = await nostr_tools(relay.url, "deletion")
    ids, oks = result["ids"], result["oks"]
    assert all(ok["ok"] for ok in oks.values()), oks
    assert set(served(result["before"])) == {ids["note1"], ids["note2"], ids["article"]}
    # The deletion itself stays; note2 survives a kind 5 from someone else.
    assert served(result["after"]) == [ids["deletion"], ids["note2"]]
    assert served(result["by_id"]) == [ids["note2"]]
    republish = result["republish"]
    assert republish["ok"] is False
    assert republish["reason"].startswith("blocked:")
    assert served(result["after_republish"]) == []


async def test_auth_required_for_writes(
    auth_write_relay: RelayServer, nostr_tools: RunScenario
) -> None:
    result = await nostr_tools(auth_write_relay.url, "auth_write")
    assert result["challenged"], "no AUTH challenge on connect"
    assert result["before"]["ok"] is False
    assert result["before"]["reason"].startswith("auth-required:")
    assert result["auth"]["ok"] is True, result["auth"]
    assert result["after"] == {"id": result["note"], "ok": True, "reason": ""}
    assert served(result["read_back"]) == [result["note"]]

    assert result["wrong_relay"]["ok"] is False
    assert result["wrong_relay"]["reason"].startswith("invalid:")
    assert result["after_wrong_auth"]["ok"] is False
    assert result["after_wrong_auth"]["reason"].startswith("auth-required:")

    assert result["auto"]["ok"] is True, result["auto"]


async def test_auth_required_for_reads(
    auth_read_relay: RelayServer, nostr_tools: RunScenario
) -> None:
    result = await nostr_tools(auth_read_relay.url, "auth_read")
    assert result["challenged"]
    assert result["written"]["ok"] is True, result["written"]
    before = result["before"]
    assert before["eose"] is False
    assert before["closed"].startswith("auth-required:")
    assert result["count_before"]["ok"] is False
    assert result["count_before"]["reason"].startswith("auth-required:")
    assert result["auth"]["ok"] is True, result["auth"]
    assert served(result["after"]) == [result["note"]]
    assert result["count_after"] == {"ok": True, "count": 1}


async def test_protected_event_from_its_author(
    relay: RelayServer, nostr_tools: RunScenario
) -> None:
    result = await nostr_tools(relay.url, "protected")
    assert result["before"]["ok"] is False
    assert result["before"]["reason"].startswith("auth-required:")
    assert result["challenged"], "auth-required came without an AUTH challenge"
    assert result["auth"]["ok"] is True, result["auth"]
    assert result["after"] == {"id": result["mine"], "ok": True, "reason": ""}
    # Authenticated as alice, bob's protected event is still refused.
    assert result["other_author"]["ok"] is False
    assert result["other_author"]["reason"].startswith("restricted:")
    assert served(result["read_back"]) == [result["mine"]]
