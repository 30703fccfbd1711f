"""Logging in with a Nostr key (NIP-07), sessions and CSRF tokens for the web app.

The login event
    The browser asks the server for a challenge (``POST /login/nonce``), then
    has its NIP-07 extension sign (``window.nostr.signEvent``) this template::

        {"kind": 27235, "created_at": <now>, "content": "",
         "tags": [["u", "<base_url>/login"], ["method", "POST"], ["challenge", "<nonce>"]]}

    Kind 27235 is NIP-98 HTTP Auth (``shared/specs/nips/98.md``): extensions
    sign it without fuss, it is never published, and its ``u`` and ``method``
    tags already say "log in to this site". The ``challenge`` tag (as in
    NIP-42) makes each login event good once: the nonce is ours, short-lived
    and burnt on use. :func:`check_login` checks all of it; the route also
    checks that the ``Origin`` header is the app's own.

Sessions
    A cookie ``pubkey.expiry.mac`` where ``mac`` is HMAC-SHA256 over
    ``session|pubkey|expiry`` (the prefix keeps it apart from CSRF tokens)
    with the node's per-start secret (``WebContext.session_secret``): nothing
    is stored server-side, a restart logs everyone out. ``HttpOnly``,
    ``SameSite=Lax``, and over https ``Secure`` with a ``__Host-`` name.

CSRF
    A token is the HMAC of the session cookie's value, so it is good only with
    that session. Every state-changing request sends it as the form field
    ``csrf`` or the header ``X-CSRF-Token`` (:func:`require_csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request

from nips import nip98
from nips.nip01 import InvalidEvent, is_hex64, parse_event

if TYPE_CHECKING:
    from web.context import WebContext

NONCE_TTL = 120  # seconds a challenge stays good
MAX_NONCES = 10_000  # outstanding challenges kept; the oldest go first
LOGIN_WINDOW = 60  # seconds either side of now for the login event's created_at
SESSION_TTL = 12 * 3600
COOKIE = "timmy_session"
SECURE_COOKIE = "__Host-timmy_session"  # over https: only this host, Secure, Path=/
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
FORM = "application/x-www-form-urlencoded"  # what an HTML form posts
MAX_FORM_BYTES = 65_536
CHALLENGE = "challenge"


class LoginRefused(Exception):
    """Raised when a login event does not log anyone in; ``reason`` is shown to the user."""

    status_code = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedLogin(LoginRefused):
    """Raised when the login request is not a well-formed event at all (the client's bug)."""

    status_code = 400


class Nonces:
    """Login challenges: issued at random, good once, for ``ttl`` seconds.

    Used ones are remembered (as many as are kept outstanding) to tell a
    replay from a made-up nonce.
    """

    def __init__(self, ttl: float = NONCE_TTL, limit: int = MAX_NONCES) -> None:
        self.ttl = ttl
        self.limit = limit
        self._issued: OrderedDict[str, float] = OrderedDict()  # oldest first
        self._burnt: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._issued)

    def issue(self, now: float) -> str:
        nonce = secrets.token_hex(32)
        self._issued[nonce] = now
        while self._issued and (
            len(self._issued) > self.limit or now - next(iter(self._issued.values())) > self.ttl
        ):
            self._issued.popitem(last=False)
        return nonce

    def burn(self, nonce: str, now: float) -> bool:
        """True the first time a nonce we issued is used within its ttl; False ever after."""
        issued = self._issued.get(nonce)
        if issued is None or now - issued > self.ttl:
            return False
        del self._issued[nonce]
        self._burnt[nonce] = None
        if len(self._burnt) > self.limit:
            self._burnt.popitem(last=False)
        return True

    def refusal(self, nonce: str) -> str:
        """Why :meth:`burn` said no, for the user."""
        if nonce in self._burnt:
            return "challenge was already used: this login event is a replay"
        if nonce in self._issued:
            return "challenge has expired: reload the page and log in again"
        return "challenge was not issued by this server (or expired long ago)"


def login_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/login"


def origin_of(url: str) -> str:
    """``scheme://host[:port]``, as browsers send it in ``Origin``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_login(event_json: str | bytes, *, nonces: Nonces, origin: str, now: float) -> str:
    """The pubkey logging in with this signed event, or :class:`LoginRefused` saying why.

    ``origin`` is the app's base URL; the event's ``u`` must be ``origin + "/login"``.
    The nonce is burnt only once everything else holds, so a refused login
    does not cost the user their challenge.
    """
    try:
        event = parse_event(orjson.loads(event_json))
    except orjson.JSONDecodeError:
        raise MalformedLogin("the login request must be a signed event as JSON") from None
    except InvalidEvent as exc:
        raise MalformedLogin(f"invalid event: {exc}") from None
    try:
        nip98.check_auth_event(
            event, url=login_url(origin), method="POST", now=now, window=LOGIN_WINDOW
        )
    except nip98.Nip98Error as exc:
        raise LoginRefused(str(exc)) from None
    nonce = event.first_tag_value(CHALLENGE)
    if nonce is None:
        raise LoginRefused("missing challenge tag: ask /login/nonce for one")
    if not nonces.burn(nonce, now):
        raise LoginRefused(nonces.refusal(nonce))
    return event.pubkey


# --- sessions ----------------------------------------------------------------


def _mac(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Constant-time equality; as bytes, since compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(given.encode(errors="replace"), expected.encode())


def make_session(pubkey: str, secret: bytes, now: float, ttl: int = SESSION_TTL) -> str:
    expiry = int(now) + ttl
    return f"{pubkey}.{expiry}.{_mac(secret, f'session|{pubkey}|{expiry}')}"


def read_session(value: str | None, secret: bytes, now: float) -> str | None:
    """The pubkey of a session cookie we made and that has not expired; None otherwise."""
    if not value or value.count(".") != 2:
        return None
    pubkey, expiry, mac = value.split(".")
    if not is_hex64(pubkey) or not expiry.isdigit() or not expiry.isascii():
        return None
    if not _same(mac, _mac(secret, f"session|{pubkey}|{expiry}")):
        return None
    return pubkey if now < int(expiry) else None


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else COOKIE


def session_cookie(value: str, *, secure: bool, ttl: int = SESSION_TTL) -> str:
    """The ``Set-Cookie`` value that starts a session."""
    attributes = f"Max-Age={ttl}; Path=/; HttpOnly; SameSite=Lax"
    return f"{cookie_name(secure)}={value}; {attributes}" + ("; Secure" if secure else "")


def clear_session_cookie(*, secure: bool) -> str:
    """The ``Set-Cookie`` value that ends it."""
    return f"{cookie_name(secure)}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax" + (
        "; Secure" if secure else ""
    )


# --- CSRF ----------------------------------------------------------------------


def csrf_token(session_value: str, secret: bytes) -> str:
    return _mac(secret, f"csrf|{session_value}")


async def require_csrf(request: Request, ctx: WebContext) -> None:
    """Raise 403 unless the request carries the CSRF token of a live session."""
    value = request.cookies.get(cookie_name(ctx.secure))
    if value is None or read_session(value, ctx.session_secret, time.time()) is None:
        raise HTTPException(403, "not logged in, or the session has expired: log in again")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(FORM):
        # Parsed here, not with request.form(): that needs python-multipart.
        # The body stays cached for the endpoint.
        fields = parse_qs((await request.body())[:MAX_FORM_BYTES].decode(errors="replace"))
        sent = next(iter(fields.get(CSRF_FIELD, ())), None)
    if not sent or not _same(sent, csrf_token(value, ctx.session_secret)):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


# --- who is asking -------------------------------------------------------------


def current_user(request: Request, ctx: WebContext) -> str | None:
    """The logged-in pubkey (hex), from the session cookie."""
    return read_session(
        request.cookies.get(cookie_name(ctx.secure)), ctx.session_secret, time.time()
    )


def is_operator(pubkey: str | None, ctx: WebContext) -> bool:
    return pubkey is not None and pubkey in ctx.operators


def page_context(request: Request, ctx: WebContext) -> dict[str, Any]:
    """What ``base.html`` needs: ``node_name``, ``user`` and the ``csrf`` token of the session."""
    value = request.cookies.get(cookie_name(ctx.secure))
    user = read_session(value, ctx.session_secret, time.time())
    csrf = csrf_token(value, ctx.session_secret) if user is not None and value else ""
    return {"node_name": ctx.node_name, "user": user, "csrf": csrf}
