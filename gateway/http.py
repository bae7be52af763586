"""Small helpers for ASGI HTTP messages: headers as bytes pairs, JSON answers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Headers = list[tuple[bytes, bytes]]
# The ASGI types of the gateway's layers. asgiref.typing's TypedDicts tell each kind of scope and
# event apart, so a layer that forwards what it did not build (any scope, any event) would narrow
# or cast at every step. As Starlette's do, a scope is a str-keyed dict and a message a str-keyed
# mapping (Django's own handler takes any mapping as a message).
Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def lower_names(headers: Headers) -> Headers:
    """Return the headers with lower-case names: a request's are, a response's may not be."""
    return [(key.lower(), value) for key, value in headers]


def header(headers: Headers, name: bytes) -> bytes | None:
    """Return the first value of a header named in lower case, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header_values(headers: Headers, name: bytes) -> list[bytes]:
    """Return every value of a header named in lower case, in order."""
    return [value for key, value in headers if key == name]


def without(headers: Headers, *names: bytes) -> Headers:
    """Return the headers less those named (lower-case)."""
    return [(key, value) for key, value in headers if key.lower() not in names]


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: Headers | None = None
) -> None:
    """Answer with a JSON body, as every error of this project is shaped."""
    payload = json.dumps(body).encode()
    response_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": payload})
