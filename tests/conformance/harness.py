"""The gateway's shared cache as a forwarding proxy, for the public HTTP caching suite.

The gateway's own layers (`RequestContext` and `ResponseCache`), unchanged, in front of an ASGI
app that forwards every request (method, path, query, headers, body) to the suite's origin server
and its answer back, as Django would answer behind the gateway. Served by uvicorn:

    CONFORMANCE_ORIGIN=http://127.0.0.1:PORT uvicorn tests.conformance.harness:application
"""

from __future__ import annotations

import logging
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.conformance.settings")
django.setup()

import httpx  # noqa: E402

from gateway.context import RequestContext  # noqa: E402
from gateway.http import (  # noqa: E402
    Receive,
    Scope,
    Send,
    send_json,
)
from gateway.response_cache import ResponseCache  # noqa: E402

# One line per request to the origin is the access log's job, not the client's.
logging.getLogger("httpx").setLevel(logging.WARNING)
# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's: never forwarded.
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"trailer"}


class ForwardToOrigin:
    """Send each HTTP request on to one origin server and relay its response, byte for byte."""

    def __init__(self, origin: str) -> None:
        self.origin = origin.rstrip("/")
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.client is None:  # created on the server's loop, not at import
            # No keep-alive, as nginx to its upstreams: the suite's origin sends bodies where
            # none belong (a 304's, a HEAD's), which would garble the next response.
            limits = httpx.Limits(max_keepalive_connections=0)
            self.client = httpx.AsyncClient(timeout=30, limits=limits)
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body", False):
                break
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = self.origin + (path + b"?" + query if query else path).decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP and k != b"host"]
        request = self.client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:  # what a proxy answers when its upstream fails
            await send_json(send, 502, {"detail": f"origin failed: {exc!r}", "code": "bad_gateway"})
            return
        try:
            # A proxy drops the hop-by-hop fields and those its Connection names (RFC 9110 7.6.1).
            listed = {
                name.strip().lower().encode("latin-1")
                for value in response.headers.get_list("connection")
                for name in value.split(",")
            }
            response_headers = [
                (k.lower(), v)
                for k, v in response.headers.raw
                if k.lower() not in HOP_BY_HOP and k.lower() not in listed
            ]
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response_headers,
            }
        )
        await send({"type": "http.response.body", "body": raw})


application = RequestContext(ResponseCache(ForwardToOrigin(os.environ["CONFORMANCE_ORIGIN"])))
