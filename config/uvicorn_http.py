"""uvicorn's zttp HTTP protocol, but a response's head goes out in the same write as its body.

uvicorn writes the head when the app sends `http.response.start` and the body when it sends
`http.response.body`: two send() calls a response, and on loopback the kernel runs the reader's
side of each inside the writer's call. A response of known length (Content-Length) is sent whole
at once by every app here, so its head can wait the moment it takes for the body: the machine's
CPU per cache HIT fell ~6% (the client's most), no gain in requests a second shown on a noisy
machine (docs/performance.md). uvicorn has no option for it, and zttp's connection cannot be
subclassed, so the connection is wrapped.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.zttp_impl import ZttpProtocol


def has_content_length(headers: list[tuple[bytes, bytes]]) -> bool:
    """Return whether a response's headers declare its length."""
    return any(name.lower() == b"content-length" for name, _ in headers)


class HeadWithBody:
    """A zttp server connection whose response head, when a body of known length follows, is
    held back from `data_to_send` until the body (or the end of the message) joins it.

    A streamed response (chunked: Server-Sent Events) has its head sent at once, as before.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.head_waits = False
        # What uvicorn calls and this class does not change, bound once: no lookup per call.
        self.upgrade = connection.upgrade
        self.receive_event = connection.receive_event
        self.next_event = connection.next_event
        self.start_next_cycle = connection.start_next_cycle
        self.should_close = connection.should_close
        self.send_informational = connection.send_informational

    def send_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.connection.send_response(status, headers)
        self.head_waits = status >= 200 and has_content_length(headers)

    def send_data(self, data: bytes) -> None:
        self.head_waits = False
        self.connection.send_data(data)

    def end_message(self) -> None:
        self.head_waits = False
        self.connection.end_message()

    def data_to_send(self) -> bytes:
        if self.head_waits:
            return b""  # uvicorn writes nothing for an empty buffer
        data: bytes = self.connection.data_to_send()
        return data


class OneWriteZttpProtocol(ZttpProtocol):
    """uvicorn's `--http zttp`, a response of known length written in one send()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = HeadWithBody(self.conn)  # type: ignore[assignment]  # duck-typed: zttp's H1Connection is final
