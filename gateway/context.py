"""Request context at the edge: a request id, one access-log line and the metrics of a request."""

import logging
import random
import re
import time

from gateway.conf import gateway_setting
from gateway.http import ASGIApp, Headers, Message, Receive, Scope, Send
from gateway.metrics import STATS_KEY, RequestStats, buffer

REQUEST_ID_HEADER = b"x-request-id"
ID_LENGTH = len(REQUEST_ID_HEADER)
# Headers the layers inside give every HTTP response (the throttle's RateLimit): RequestContext
# adds them with the request id, so one `send` is wrapped rather than one per layer.
RESPONSE_HEADERS_KEY = "gateway_response_headers"
# Echo a caller's id only when it is safe to put in a log line and a header.
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")

access_logger = logging.getLogger("gateway.access")


def new_request_id() -> bytes:
    """Return a random UUID's 128 bits in hex, with no UUID object."""
    # Not os.urandom, a system call each request: an id must be unique, not unpredictable, and
    # `random` is seeded from os.urandom in each process.
    return b"%032x" % random.getrandbits(128)


def split_request_id(headers: Headers) -> tuple[bytes, Headers]:
    """Return the caller's X-Request-ID when well formed, else a new one; and the other headers."""
    request_id: bytes | None = None
    others: Headers = []
    for name, value in headers:
        if name != REQUEST_ID_HEADER:
            others.append((name, value))
        elif request_id is None and _VALID_REQUEST_ID.match(value):
            request_id = value
    return request_id or new_request_id(), others


class RequestContext:
    """Give each HTTP request an id (echoed to the client and seen by Django), log and count it."""

    timer = staticmethod(time.perf_counter)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.timer()
        request_id, headers = split_request_id(scope["headers"])
        headers.append((REQUEST_ID_HEADER, request_id))
        stats = RequestStats()
        added: Headers = []
        scope = {**scope, "headers": headers, STATS_KEY: stats, RESPONSE_HEADERS_KEY: added}
        status = 500  # what the client sees if the app fails before it starts a response

        async def send_with_request_id(event: Message) -> None:
            nonlocal status
            if event["type"] == "http.response.start":
                status = event["status"]
                # An id the app set is replaced; the length first: lower() on every name cost
                # more than the rest of this function.
                response_headers = [
                    (k, v)
                    for k, v in event.get("headers", [])
                    if len(k) != ID_LENGTH or k.lower() != REQUEST_ID_HEADER
                ]
                response_headers += added
                response_headers.append((REQUEST_ID_HEADER, request_id))
                event = {**event, "headers": response_headers}
            await send(event)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            duration = self.timer() - started
            if access_logger.isEnabledFor(logging.INFO):  # its fields cost more than the check
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                        "request_id": request_id.decode(),
                        "cache": stats.cache,
                    },
                )
            if not scope["path"].startswith(gateway_setting("EXEMPT_PREFIXES")):
                buffer.record(path=scope["path"], status=status, duration=duration, stats=stats)
                if buffer.flush_now():
                    await buffer.flush()
