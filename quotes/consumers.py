"""The quotes WebSocket: subscribe to symbols, get a snapshot, then one message per tick.

Client -> server: subscribe / unsubscribe {symbols}, resume {since}, ping.
Server -> client: snapshot, tick, pong, heartbeat, error {code, detail}. The README ("Live
quotes") documents each message.

The query string can subscribe on connecting: ?symbols=ACME,BOLT, plus &since=41 to resume after
tick 41 instead of getting a snapshot. `since` alone is answered with an `invalid` error (the
connection stays open, as after any other error): a later subscribe gets a snapshot, which is
already up to date, and `resume` is how to replay after it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TypedDict, cast
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from redis import RedisError
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.protocol import State

from gateway.http import Message, Send
from quotes.conf import conf
from quotes.feed import (
    FeedMessage,
    Follower,
    Refused,
    TickMessage,
    encode,
    parse_seq,
    tick_hub,
    validate_symbols,
)
from quotes.market import Quote

logger = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
SINCE_NEEDS_SYMBOLS = "since needs symbols in the query string too: ?symbols=ACME&since=41."


def now_ms() -> int:
    """Return the wall-clock time in epoch milliseconds, as ticks carry it."""
    return int(time.time() * 1000)


class Producer(Protocol):
    """Twisted's IPushProducer: what a transport calls as its write buffer fills and drains."""

    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...
    def stopProducing(self) -> None: ...


class ProducerTransport(Protocol):
    """The part of a Twisted transport (IConsumer) that a push producer is registered with."""

    producer: Producer | None

    def registerProducer(self, producer: Producer, streaming: bool) -> None: ...
    def unregisterProducer(self) -> None: ...


class SendWindow:
    """Whether daphne can take another message for this client without queueing it in memory.

    ASGI gives an application no backpressure and daphne's send never waits: every message goes
    to Twisted, which buffers what a client does not read, without limit. Twisted's own flow
    control tells the push producer registered on a connection to pause once 64 KiB are waiting
    and to resume when they are gone; this window is that producer.
    """

    def __init__(self) -> None:
        self.open = True
        self.transport: ProducerTransport | None = None
        # The producer we took the place of; it still hears every call.
        self.previous: Producer | None = None

    # Twisted's IPushProducer, called on daphne's event loop.
    def pauseProducing(self) -> None:
        self.open = False
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:
        self.open = True
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:
        if self.previous is not None:
            self.previous.stopProducing()

    @classmethod
    def attach(cls, send: Send) -> SendWindow | BufferWindow:
        """Return the window of the connection `send` writes to (always open if it cannot tell)."""
        window = cls()
        # daphne's send is functools.partial(server.handle_reply, protocol), the one way to reach
        # its protocol; uvicorn's is a method of its protocol. ASGI layers that wrap `send` say
        # what they wrap with functools.wraps. Elsewhere (granian, a test communicator) the window
        # stays open and the server's own backpressure, an `await send` that waits, takes its place.
        send = inspect.unwrap(send)
        if isinstance(send, functools.partial) and send.args:
            protocol = send.args[0]
        else:
            protocol = getattr(send, "__self__", None)
        transport = getattr(protocol, "transport", None)
        if hasattr(transport, "get_write_buffer_size"):  # an asyncio transport: uvicorn's
            return BufferWindow(cast(asyncio.WriteTransport, transport))
        if hasattr(transport, "registerProducer"):  # a Twisted transport: daphne's
            transport = cast(ProducerTransport, transport)
            # A transport has one producer: daphne leaves the HTTP channel it upgraded from
            # registered, so stand in front of it and pass its calls on.
            window.previous = transport.producer
            if window.previous is not None:
                transport.unregisterProducer()
            transport.registerProducer(window, True)
            window.transport = transport
        return window

    def detach(self) -> None:
        if self.transport is not None:
            self.transport.unregisterProducer()
            self.transport = None


class BufferWindow:
    """Whether an asyncio server (uvicorn) has less than 64 KiB waiting for this client.

    uvicorn's send waits while more than its transport's high-water mark (64 KiB) waits for a
    client that does not read; the ticks meanwhile would queue up behind it, stale by the time
    they are sent. Holding ticks back from that point on keeps the send from waiting and lets them
    be merged, as daphne's window does.
    """

    LIMIT = 64 * 1024

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport

    @property
    def open(self) -> bool:
        return self.transport.get_write_buffer_size() < self.LIMIT

    def detach(self) -> None:
        pass


# The frame of a tick message, made once per process for all its clients: a server's frames are
# not masked, so every client of a message gets the same bytes.
@functools.lru_cache(maxsize=256)
def text_frame(text: str) -> bytes:
    """Return a whole WebSocket text frame carrying `text`, without extensions."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


class DirectFrames:
    """A tick's frame written straight to uvicorn's transport, past its ASGI `send`.

    Through `send`, each tick to each client cost the consumer's send, Channels' and uvicorn's,
    the frame's making and a task woken by the hub: ~70 µs of a server's CPU per client per tick
    (docs/performance.md). The frame is the same bytes for every client, and uvicorn keeps no
    state for a data frame it sends; so once the handshake is done, and only without extensions
    (a permessage-deflate frame would need the connection's compressor), a tick is one write.
    """

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol  # uvicorn's WebSocketsSansIOProtocol

    @classmethod
    def attach(cls, send: Send) -> DirectFrames | None:
        """Return the direct writer of the connection `send` writes to; None if it has none."""
        protocol = getattr(inspect.unwrap(send), "__self__", None)
        connection = getattr(protocol, "conn", None)
        transport = getattr(protocol, "transport", None)
        if not isinstance(connection, WebSocketProtocol) or connection.extensions:
            return None
        if not hasattr(transport, "is_closing"):  # an asyncio transport (uvloop's is no subclass)
            return None
        return cls(protocol)

    @property
    def open(self) -> bool:
        protocol = self.protocol
        return (
            protocol.conn.state is State.OPEN
            and not protocol.close_sent
            and not protocol.transport.is_closing()
        )

    def write(self, message: TickMessage) -> None:
        self.protocol.transport.write(text_frame(message.json))


class TokenBucket:
    """Allow `rate` events a second on average, in bursts of at most `rate`."""

    def __init__(self, rate: float, timer: Callable[[], float]) -> None:
        self.rate = rate
        self.timer = timer
        self.tokens = rate
        self.updated = timer()

    def take(self) -> bool:
        now = self.timer()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Conflation(TypedDict):
    """Ticks `first_seq` to `seq` merged for a slow client: the newest quote of each symbol."""

    type: Literal["tick"]
    seq: int
    ts: int
    quotes: dict[str, Quote]
    first_seq: int


def conflate(pending: Conflation | None, tick: TickMessage) -> Conflation:
    """Merge `tick` into the tick message held back for a slow client: newest quote per symbol."""
    if pending is None:
        return {
            "type": tick["type"],
            "seq": tick["seq"],
            "ts": tick["ts"],
            "quotes": {q["symbol"]: q for q in tick["quotes"]},
            "first_seq": tick["seq"],
        }
    quotes = {**pending["quotes"], **{q["symbol"]: q for q in tick["quotes"]}}
    return {**pending, "seq": tick["seq"], "ts": tick["ts"], "quotes": quotes}


class QuotesConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels ships no type hints
    """Live quotes for the symbols a client subscribes to; quotes are public, so no login."""

    # Ticks come from the process's TickHub (quotes.feed), not from a channel per client.
    channel_layer_alias = None
    # Test hooks: the clock of the limits, and how the consumer learns the connection's window.
    timer = staticmethod(time.monotonic)
    window_for = staticmethod(SendWindow.attach)
    frames_for = staticmethod(DirectFrames.attach)

    async def connect(self) -> None:
        self.direct: DirectFrames | None = None  # set once the ticks are forwarded
        # Before any snapshot: no tick is missed meanwhile.
        self.ticks = await tick_hub().join(self.offer)
        self.handling = asyncio.Lock()  # a tick and a client's message, one at a time
        self.settings = conf()
        self.follower = Follower()
        self.pending: Conflation | None = None
        self.budget = TokenBucket(self.settings["MAX_MESSAGES_PER_SECOND"], self.timer)
        self.errors: collections.deque[float] = collections.deque()
        self.closing = False
        self.window = self.window_for(self.base_send)
        # A JWT may come as ?token= or a subprotocol; quotes are public, so it is never required,
        # and whatever the gateway verified is in scope["auth_claims"]. A browser that offers
        # subprotocols needs one echoed back, or it drops the connection.
        offered = self.scope.get("subprotocols") or []
        await self.accept(offered[0] if offered else None)
        self.last_sent = self.timer()
        self.heartbeat = asyncio.create_task(self.send_heartbeats())
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if "symbols" in query:
            try:
                await self.join(query["symbols"][-1].split(","), query.get("since", [None])[-1])
            except RedisError:
                await self.unavailable()
        elif "since" in query:
            # A snapshot of what is subscribed afterwards makes a remembered `since` moot.
            await self.refuse("invalid", SINCE_NEEDS_SYMBOLS)
        # Only now: the ticks that came meanwhile wait in the queue, after the snapshot.
        self.forwarding = asyncio.create_task(self.forward_ticks())
        self.direct = self.frames_for(self.base_send)

    async def join(self, symbols: list[str], raw_since: str | None) -> None:
        """Subscribe to the query string's symbols, resuming after `since` when given."""
        try:
            symbols = validate_symbols(symbols)
            since = parse_seq(raw_since, name="since")
        except Refused as error:
            await self.refuse(error.code, error.detail)
            return
        if since is None:
            await self.deliver(await self.follower.subscribe(symbols))
        else:
            for message in await self.follower.resume(since, symbols):
                await self.deliver(message)

    async def disconnect(self, code: int) -> None:
        self.heartbeat.cancel()
        self.forwarding.cancel()
        self.window.detach()
        await tick_hub().leave(self.ticks)

    async def websocket_disconnect(self, message: Message) -> None:
        # Channels' own also closes stale database connections in its one sync thread: a thread
        # hop per client leaving, queued behind each other when thousands leave at once; this
        # consumer is in no group and never touches the database.
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def dispatch(self, message: Message) -> None:
        """Call the handler of `message`'s type; a client's message never beside a tick."""
        # Channels' own dispatch first closes stale database connections in its one sync thread,
        # a thread hop per message; this consumer never touches the database.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if message["type"] != "websocket.receive":
            await handler(message)
            return
        async with self.handling:
            await handler(message)

    # --- client -> server ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        if not self.budget.take():
            limit = self.settings["MAX_MESSAGES_PER_SECOND"]
            await self.refuse("rate_limited", f"At most {limit} messages a second.")
            return
        if text_data is None:
            await self.refuse("invalid", "Send JSON in text frames, not binary ones.")
            return
        if len(text_data.encode()) > self.settings["MAX_MESSAGE_BYTES"]:
            limit = self.settings["MAX_MESSAGE_BYTES"]
            await self.refuse("message_too_large", f"Messages are limited to {limit} bytes.")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.refuse("bad_json", "The message is not valid JSON.")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        handlers = {
            "subscribe": self.on_subscribe,
            "unsubscribe": self.on_unsubscribe,
            "resume": self.on_resume,
            "ping": self.on_ping,
        }
        # The type may be any JSON value; only a string can name a handler (a list cannot be a key).
        handler = handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            await self.refuse(
                "unknown_type", "type must be subscribe, unsubscribe, resume or ping."
            )
            return
        try:
            await handler(message)
        except RedisError:
            await self.unavailable()

    async def on_subscribe(self, message: dict[str, Any]) -> None:
        try:
            symbols = validate_symbols(message.get("symbols"), subscribed=self.follower.symbols)
        except Refused as error:
            await self.refuse(error.code, error.detail)
            return
        await self.deliver(await self.follower.subscribe(symbols))

    async def on_unsubscribe(self, message: dict[str, Any]) -> None:
        symbols = message.get("symbols")
        if not (isinstance(symbols, list) and all(isinstance(s, str) for s in symbols)):
            await self.refuse("invalid", "symbols must be a list of ticker symbols.")
            return
        self.follower.unsubscribe(symbols)
        if self.pending is not None:
            for symbol in symbols:
                self.pending["quotes"].pop(symbol, None)

    async def on_resume(self, message: dict[str, Any]) -> None:
        since = message.get("since")
        if type(since) is not int or since < 0:
            await self.refuse("invalid", "since must be a tick seq (a whole number).")
            return
        self.pending = None  # the replay sends everything after `since` again
        for each in await self.follower.resume(since):
            await self.deliver(each)

    async def on_ping(self, message: dict[str, Any]) -> None:
        await self.send_message({"type": "pong", "ts": now_ms()})

    async def unavailable(self) -> None:
        """Tell the client Redis did not answer (not its fault: no strike against it)."""
        logger.warning("Redis unavailable for a quotes client", exc_info=True)
        await self.send_message(
            {"type": "error", "code": "service_unavailable", "detail": "Try again shortly."}
        )

    async def refuse(self, code: str, detail: str) -> None:
        """Answer a client error; close with 1008 when errors keep coming."""
        now = self.timer()
        self.errors.append(now)
        while self.errors[0] <= now - self.settings["ERROR_WINDOW_SECONDS"]:
            self.errors.popleft()
        await self.send_message({"type": "error", "code": code, "detail": detail})
        if len(self.errors) > self.settings["MAX_ERRORS"]:
            self.closing = True
            await self.close(code=POLICY_VIOLATION)

    # --- server -> client ---------------------------------------------------------------------

    def offer(self, tick: str) -> bool:
        """Send a published tick (JSON) at once, from the hub, when nothing else need happen first.

        That is: with a direct writer, nothing queued or being handled before it, no gap to fill,
        nothing held back for a slow client and room in its window. Else False: it is queued.
        """
        direct = self.direct
        if direct is None or not self.ticks.empty() or self.handling.locked():
            return False
        if self.pending is not None or not self.window.open or not direct.open:
            return False
        messages = self.follower.next_tick(tick)
        if messages is None:
            return False  # a gap, filled from Redis by forward()
        for message in messages:
            direct.write(message)
            self.last_sent = self.timer()
        return True

    async def forward_ticks(self) -> None:
        """Forward every tick the hub puts in this connection's queue, in order."""
        while True:
            tick = await self.ticks.get()
            try:
                async with self.handling:
                    await self.forward(tick)
            except OSError:
                return  # what ASGI servers raise once the client has gone; disconnect() follows
            if not self.ticks.empty():
                # Let the server write this one out first: daphne pauses a connection (closes the
                # window) that is sent two big messages in one turn of the event loop.
                await asyncio.sleep(0)

    async def forward(self, tick: str) -> None:
        """Send the messages a published tick (JSON) makes for this client."""
        try:
            messages = await self.follower.on_tick(tick)
        except RedisError:
            # The gap stays open; the next tick fills it.
            logger.warning("Redis unavailable while filling a gap", exc_info=True)
            return
        for message in messages:
            await self.deliver(message)

    async def deliver(self, message: FeedMessage) -> None:
        """Send a snapshot or tick; conflate ticks while the client is not keeping up."""
        if not isinstance(message, TickMessage):  # a snapshot
            if message["reset"]:
                self.pending = None
            await self.send_message(message)
            return
        if self.pending is None and self.window.open:
            await self.send_message(message)
            return
        # Only the latest price matters: hold one merged tick (bounded by the symbols) and send it
        # once the client has read what it was sent, never a queue of stale ones.
        self.pending = conflate(self.pending, message)
        if self.window.open:
            pending, self.pending = self.pending, None
            merged: dict[str, Any] = {**pending, "quotes": list(pending["quotes"].values())}
            first_seq = merged.pop("first_seq")
            if first_seq < pending["seq"]:  # says which ticks it stands for, so none looks lost
                merged.update(conflated=True, first_seq=first_seq)
            await self.send_message(merged)

    async def send_message(self, message: Mapping[str, Any]) -> None:
        self.last_sent = self.timer()
        await self.send(text_data=encode(message))

    async def send_heartbeats(self) -> None:
        """Send a heartbeat whenever the connection has been quiet for HEARTBEAT_SECONDS."""
        interval = self.settings["HEARTBEAT_SECONDS"]
        while True:
            quiet = self.timer() - self.last_sent
            if quiet < interval:
                await asyncio.sleep(interval - quiet)
            elif self.window.open:
                await self.send_message({"type": "heartbeat", "ts": now_ms()})
            else:
                await asyncio.sleep(interval)  # the client is not reading: no point adding to it
