"""What the web app reads from the rest of the node: one object, handed to every route group."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dvm.engine import Engine
    from node.blobs import BlobStore
    from node.links import RelayPool
    from node.wallet import Wallet
    from node.zaps import Zaps
    from reputation.service import ReputationService


@dataclass
class WebContext:
    node_name: str = "timmy"
    base_url: str = "http://127.0.0.1:8080"  # how browsers reach the app (origin of logins)
    relay_url: str = ""  # the node's relay, for pages that talk to it from the browser
    node_pubkey: str = ""
    operators: frozenset[str] = frozenset()  # hex pubkeys allowed on operator pages
    engine: Engine | None = None
    reputation: ReputationService | None = None
    wallet: Wallet | None = None
    links: RelayPool | None = None
    zaps: Zaps | None = None
    blobs: BlobStore | None = None  # Blossom (web/routes/blossom.py)
    # Keys allowed to upload blobs; empty means any key with a valid authorization.
    blob_uploaders: frozenset[str] = frozenset()
    metrics: Callable[[], bytes] | None = None
    # Signs session cookies and CSRF tokens. Random per start, never on disk:
    # a restart logs everyone out, which is the price of that.
    session_secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        """Cookies get ``Secure`` when the app is served over https."""
        return self.base_url.startswith("https://")

    @property
    def domain(self) -> str:
        return self.base_url.split("://", 1)[-1].rstrip("/")
