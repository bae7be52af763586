"""uvicorn's HTTP protocol as `make run` starts it (config.uvicorn_http): a response of known
length leaves in one write, head and body; a streamed one sends its head at once.

What reaches a client is read through a real uvicorn on a socket; how many writes a response took
is read off the protocol's transport, which a client cannot see (TCP may join or split them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from uvicorn.server import ServerState

from config.uvicorn_http import OneWriteZttpProtocol
from scripts.dev import UVICORN_HTTP
from tests.support import uvicorn_serving

pytestmark = pytest.mark.asyncio

BODY = b'{"id": 1}'
FIXED = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def fixed_length(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": FIXED})
    await send({"type": "http.response.body", "body": BODY})


class RecordingTransport:
    """The least of an asyncio transport uvicorn's protocol uses; keeps what is written."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name)

    def write(self, data: bytes) -> None:
        if data:  # uvloop's transport writes nothing for no bytes, as here
            self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def writes_of(app, request: bytes) -> list[bytes]:
    """Return the writes the protocol makes answering `request` with `app`."""
    config = uvicorn.Config(app, http=UVICORN_HTTP, lifespan="off", log_level="warning")
    server_state = ServerState()
    protocol = OneWriteZttpProtocol(config=config, server_state=server_state, app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(request)
    await asyncio.gather(*server_state.tasks)
    protocol.connection_lost(None)
    return transport.writes


@asynccontextmanager
async def serving(app) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Serve `app` under uvicorn as `make run` does; yield a connection to it."""
    async with uvicorn_serving(app, http=UVICORN_HTTP) as address:
        reader, writer = await asyncio.open_connection(*address)
        yield reader, writer
        writer.close()


async def test_a_response_of_known_length_is_one_write_of_head_and_body():
    writes = await writes_of(fixed_length, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    assert len(writes) == 1
    head, body = writes[0].split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 9" in head.lower()
    assert body == BODY


async def test_a_head_request_gets_the_head_alone_in_one_write():
    writes = await writes_of(fixed_length, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")

    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\n")


async def test_a_malformed_request_still_gets_its_400():
    writes = await writes_of(fixed_length, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")

    assert b"".join(writes).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"".join(writes).endswith(b"Invalid HTTP request received.")


async def test_a_fixed_length_response_reaches_a_client_whole():
    async with serving(fixed_length) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(len(BODY))

    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == BODY


async def test_a_streamed_response_sends_its_head_before_its_first_chunk():
    # Given an app that streams (no Content-Length) and sends nothing more until told
    go_on = asyncio.Event()

    async def stream(scope, receive, send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await go_on.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": False})

    async with serving(stream) as (reader, writer):
        # When a client asks, the head arrives while the body is still to come
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        go_on.set()
        chunk = await reader.readuntil(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"data: 1" in chunk
