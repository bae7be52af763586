"""Hand HTTP requests to Django's WSGI handler from the event loop: one thread hop per request.

Django's ASGI handler hops between the event loop and its sync thread about 26 times per request
with the default middleware (docs/performance.md: ~1,390 µs of CPU against 66 µs for the WSGI
handler). asgiref's WsgiToAsgi hops back to the loop for every chunk it sends, so this runs the
whole WSGI call in one hop and sends the buffered response from the loop. Streaming responses and
async views (SSE) stay on Django's ASGI handler: `asgi_paths` go there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from io import BytesIO
from types import TracebackType
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest

from gateway.http import ASGIApp, Headers, Receive, Scope, Send


class ScopedWSGIRequest(WSGIRequest):
    """A WSGIRequest that keeps the ASGI scope, as Django's ASGIRequest does (the edge's claims)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        super().__init__(environ)
        self.scope = environ["asgi.scope"]


class ScopedWSGIHandler(WSGIHandler):
    request_class = ScopedWSGIRequest


def environ_for(scope: Scope, body: bytes) -> dict[str, Any]:
    """Return the WSGI environ of an ASGI HTTP request (PEP 3333)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf8").decode("latin1"),
        "PATH_INFO": scope["path"].encode("utf8").decode("latin1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("ascii"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin1").upper().replace("-", "_")
        value = raw_value.decode("latin1")
        if name == "CONTENT_LENGTH" or name == "CONTENT_TYPE":
            environ[name] = value
            continue
        key = f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class WSGIBridge:
    """Serve HTTP with Django's WSGI handler in a thread; `asgi_paths` with `asgi_app`."""

    def __init__(self, asgi_app: ASGIApp, asgi_paths: tuple[str, ...] = ()) -> None:
        self.asgi_app = asgi_app
        self.asgi_paths = asgi_paths
        self.handler = ScopedWSGIHandler()
        # thread_sensitive: the thread Django's ASGI handler would use for sync code (and, in
        # tests under async_to_sync, the test's own thread, which holds its transaction).
        self.call = sync_to_async(self._call, thread_sensitive=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.asgi_paths:
            await self.asgi_app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, content = await self.call(environ_for(scope, body))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _call(self, environ: dict[str, Any]) -> tuple[int, Headers, bytes]:
        started: list[Any] = []

        def start_response(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: tuple[type[BaseException], BaseException, TracebackType]
            | tuple[None, None, None]
            | None = None,
        ) -> Callable[[bytes], object]:
            started[:] = [status, headers]
            return lambda data: None  # PEP 3333's write(): Django never calls it

        response = self.handler(environ, start_response)
        try:
            content = b"".join(response)
        finally:
            if hasattr(response, "close"):
                response.close()
        status, headers = started
        return (
            int(status.split(" ", 1)[0]),
            [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers],
            content,
        )
