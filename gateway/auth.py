"""Edge authentication: verify a Bearer JWT once, before any view; Django reuses the claims."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from rest_framework_simplejwt.exceptions import TokenError

from gateway.http import ASGIApp, Receive, Scope, Send, header_values, send_json
from sessions_demo.tokens import access_token_claims

logger = logging.getLogger(__name__)

# The key sessions_demo's DRF authentication reads (sessions_demo.authentication.SCOPE_CLAIMS_KEY).
CLAIMS_KEY = "auth_claims"
# A browser cannot set headers on a WebSocket: it offers `bearer, <token>` as subprotocols.
BEARER_SUBPROTOCOL = "bearer"
INVALID_TOKEN = [(b"www-authenticate", b'Bearer error="invalid_token"')]


class CredentialError(Exception):
    """The request's credentials are malformed, ambiguous or invalid."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def bearer_tokens(scope: Scope) -> list[str]:
    """Return every bearer token the request offers: header, query string, WebSocket subprotocol."""
    tokens = []
    for value in header_values(scope["headers"], b"authorization"):
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            tokens.append(token.strip())
    if scope["type"] == "websocket":
        tokens += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        protocols = [p.strip() for p in ",".join(scope.get("subprotocols", [])).split(",")]
        if BEARER_SUBPROTOCOL in protocols[:-1]:
            tokens.append(protocols[protocols.index(BEARER_SUBPROTOCOL) + 1])
    return tokens


def verified_claims(scope: Scope) -> dict[str, Any] | None:
    """Return the claims of the request's one valid token, or None; raise CredentialError."""
    tokens = bearer_tokens(scope)
    if not tokens:
        return None
    if len(tokens) > 1:
        raise CredentialError(400, "multiple_credentials", "Send one bearer token, not several.")
    try:
        return access_token_claims(tokens[0])
    except TokenError as exc:
        raise CredentialError(401, "token_not_valid", str(exc)) from exc


class EdgeAuth:
    """Verify the request's JWT once; put its claims in the scope, or refuse the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            claims = verified_claims(scope)
        except CredentialError as error:
            await refuse(scope, receive, send, error)
            return
        await self.app({**scope, CLAIMS_KEY: claims}, receive, send)


async def refuse(scope: Scope, receive: Receive, send: Send, error: CredentialError) -> None:
    """Answer a refused request: JSON over HTTP; over WebSocket, close before accepting."""
    if scope["type"] == "websocket":
        await receive()  # the websocket.connect event
        await send({"type": "websocket.close", "code": 4401 if error.status == 401 else 4400})
        return
    headers = INVALID_TOKEN if error.status == 401 else []
    await send_json(send, error.status, {"detail": error.detail, "code": error.code}, headers)
