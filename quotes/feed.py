"""One gapless sequence of messages per client, shared by the WebSocket consumer and the SSE view.

Ticks reach a process through the channel layer, which may drop one (pub/sub is at most once) or
deliver one late; every client also joins, resumes and subscribes at its own moment. A Follower
turns all of that into messages whose seqs have no holes: it fills a gap from the stored ticks,
drops what the client already has, and when the ticks it needs are no longer kept sends a fresh
snapshot flagged `reset`, so a client can always tell whether it missed anything.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypedDict

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from redis import asyncio as aioredis

from config.redis_wiring import async_client_for
from quotes import keys
from quotes.conf import conf
from quotes.market import Quote, Tick
from quotes.selectors import QuoteList, latest_view, market

logger = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TickHub] = weakref.WeakKeyDictionary()
# The last tick's meta hash and the latest-quotes hash, read in one MULTI/EXEC.
MarketState = tuple[dict[str, str], dict[str, str]]
_state_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[MarketState]] = (
    weakref.WeakKeyDictionary()
)


def redis_client() -> aioredis.Redis:
    """Return the running event loop's client for the quotes readers (one bounded pool per loop)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = async_client_for(
            settings.REDIS["stores"],
            settings.REDIS_TIMEOUT,
            max_connections=conf()["REDIS_POOL_SIZE"],
            decode_responses=True,
        )
    return client


async def close_redis_client() -> None:
    """Close the running event loop's client, if it has one (tests, before their loop closes)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose(close_connection_pool=True)


class Refused(ValueError):
    """A client's request we turn down: unknown or too many symbols, a malformed value."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def validate_symbols(symbols: object, *, subscribed: Iterable[str] = ()) -> list[str]:
    """Return `symbols` without duplicates when they are all known and within the limit."""
    if not (isinstance(symbols, list) and symbols and all(isinstance(s, str) for s in symbols)):
        raise Refused("invalid", "symbols must be a non-empty list of ticker symbols.")
    symbols = list(dict.fromkeys(symbols))
    known = market().opening
    if unknown := [symbol for symbol in symbols if symbol not in known]:
        raise Refused("unknown_symbol", f"Unknown symbols: {', '.join(unknown)}.")
    limit = conf()["MAX_SYMBOLS"]
    if len({*subscribed, *symbols}) > limit:
        raise Refused("too_many_symbols", f"At most {limit} symbols per connection.")
    return symbols


def parse_seq(raw: str | None, *, name: str) -> int | None:
    """Return a tick seq given as text (None stays None); Refused when it is not one."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise Refused("invalid", f"{name} must be a tick seq (a whole number).")
    return int(raw)


async def snapshot(symbols: list[str]) -> QuoteList:
    """Return {seq, ts, quotes}: the latest quotes of `symbols` and the tick they are from."""
    meta, latest = await market_state()
    return latest_view(market(), meta, latest, symbols)


async def market_state() -> MarketState:
    """Return the last tick's meta and every symbol's latest quote, as stored at one moment.

    The clients that ask while a read is on its way share it: in a join burst the snapshots'
    reads were a fifth of a worker's CPU (docs/performance.md). A shared read may be a moment
    older than a later client's place in the tick hub; a tick between the two is a gap, which
    its Follower fills from the stored ticks as any other.
    """
    loop = asyncio.get_running_loop()
    reading = _state_reads.get(loop)
    if reading is None or reading.done():
        reading = _state_reads[loop] = loop.create_task(_read_market_state())
    return await asyncio.shield(reading)  # one client leaving does not cancel the others' read


async def _read_market_state() -> MarketState:
    async with redis_client().pipeline() as pipe:  # MULTI/EXEC: the seq and quotes of one moment
        pipe.hgetall(keys.meta())
        pipe.hgetall(keys.latest())
        meta, latest = await pipe.execute()
    return meta, latest


async def ticks_after(since: int, until: int | None = None) -> list[str] | None:
    """Return the ticks after `since` (up to `until`, default the last) as stored, as JSON.

    None when they are not all kept.
    """
    async with redis_client().pipeline() as pipe:
        pipe.hget(keys.meta(), "seq")
        pipe.xrange(keys.ticks(), min=f"{since + 1}-0", max="+" if until is None else f"{until}-0")
        current, entries = await pipe.execute()
    last = int(current or 0) if until is None else until
    ticks = [fields["tick"] for _id, fields in entries]
    # Stored seqs are consecutive, so a count short of the range means its start was trimmed
    # (or `since` is from before the market was last reset).
    return ticks if len(ticks) == last - since else None


def published_tick(event: Mapping[str, Any]) -> str:
    """Return the JSON of the tick a channel-layer event carries."""
    tick = event["tick"]
    # A worker of the previous release publishes the tick as a dict (same keys, same order).
    return tick if isinstance(tick, str) else json.dumps(tick)


# Every client of a process gets each tick at the same moment, and most follow the same symbols:
# decode a tick and encode its message once per process, not once per client. Keyed by the tick's
# JSON, so a cached value can never belong to another tick; the values are shared: read only.
@functools.lru_cache(maxsize=16)
def decoded_tick(text: str) -> Tick:
    """Return the tick stored and published as `text` (shared: do not change it)."""
    tick: Tick = json.loads(text)
    return tick


class Snapshot(TypedDict):
    """A client's symbols as of one tick; `reset` when it stands for ticks no longer kept."""

    type: Literal["snapshot"]
    reset: bool
    seq: int
    ts: int | None
    quotes: list[Quote]


class TickMessage(dict[str, Any]):
    """A tick message with its JSON, made once for every client that follows the same symbols."""

    __slots__ = ("json",)
    json: str


# What a Follower sends its client.
FeedMessage = Snapshot | TickMessage


@functools.lru_cache(maxsize=256)
def tick_message(text: str, symbols: frozenset[str]) -> TickMessage:
    """Return the message of tick `text` for a client following `symbols` (shared: read only)."""
    tick = decoded_tick(text)
    quotes = [quote for quote in tick["quotes"] if quote["symbol"] in symbols]
    message = TickMessage(type="tick", seq=tick["seq"], ts=tick["ts"], quotes=quotes)
    message.json = json.dumps(message)
    return message


def encode(message: Mapping[str, Any]) -> str:
    """Return `message` as JSON (a tick message's JSON was made once, with it)."""
    return message.json if isinstance(message, TickMessage) else json.dumps(message)


class TickHub:
    """The published ticks for every quotes client of one event loop, through one subscription.

    A channel per client would cost each client a queue, a task woken by the layer and the
    unpacking of every tick; the hub receives a tick once and puts its JSON in each client's queue.
    """

    def __init__(self) -> None:
        # Each client's queue, and what it offers a tick to first: a client that can send a tick
        # at once takes it (True) without a queue's task waking up for it.
        self.queues: dict[asyncio.Queue[str], Callable[[str], bool] | None] = {}
        self.listening: asyncio.Task[None] | None = None
        self.subscribed: asyncio.Future[None] | None = None

    async def join(self, offer: Callable[[str], bool] | None = None) -> asyncio.Queue[str]:
        """Return a queue that gets every tick (JSON) this process receives from now on.

        With `offer`, each tick goes to it first, and to the queue only when it returns False.
        """
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.queues[queue] = offer
        try:
            try:
                await self.subscription()
            except (redis.RedisError, OSError):
                # After Redis restarts or fails over, the first subscription meets the
                # connection Redis dropped and fails; the next one reconnects.
                await self.subscription()
        except BaseException:
            await self.leave(queue)
            raise
        return queue

    async def subscription(self) -> None:
        """Wait until this process is subscribed to the ticks, subscribing if it is not."""
        if self.listening is None or self.listening.done():  # none yet, or it failed
            self.subscribed = asyncio.get_running_loop().create_future()
            self.listening = asyncio.create_task(self.listen(self.subscribed))
        assert self.subscribed is not None  # set and cleared together with `listening`
        await asyncio.shield(self.subscribed)  # subscribed before the caller reads a snapshot

    async def leave(self, queue: asyncio.Queue[str]) -> None:
        """Stop filling `queue`; unsubscribe when it was the last one."""
        self.queues.pop(queue, None)
        if not self.queues and self.listening is not None:
            listening, self.listening, self.subscribed = self.listening, None, None
            listening.cancel()
            await asyncio.wait([listening])  # until it has unsubscribed

    async def listen(self, subscribed: asyncio.Future[None]) -> None:
        layer = get_channel_layer()
        channel = None
        try:
            channel = await layer.new_channel()
            await layer.group_add(keys.GROUP, channel)
            subscribed.set_result(None)
            while True:
                tick = published_tick(await layer.receive(channel))
                for queue, offer in self.queues.items():  # offers never await: no client leaves
                    if offer is None or not offer(tick):
                        queue.put_nowait(tick)
        except Exception as error:
            if not subscribed.done():
                subscribed.set_exception(error)  # the clients joining now fail with it
            logger.exception("Quotes tick subscription failed; the next client to join restarts it")
        finally:
            if channel is not None:
                # The layer's receive unsubscribes its channel when cancelled; the group is ours.
                await layer.group_discard(keys.GROUP, channel)


def tick_hub() -> TickHub:
    """Return the running event loop's hub."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = TickHub()
    return hub


class Follower:
    """The sequence of one client: the seq it is up to date with, and its symbols.

    `symbols` maps each symbol to the seq at which the client last got its full state (a
    snapshot), so that a tick older than that snapshot never sends it back in time. It is replaced,
    never changed in place (`_follow`), so the symbols a tick is for can be kept between ticks.
    """

    def __init__(self) -> None:
        self.cursor: int | None = None
        self._follow({})

    def _follow(self, symbols: dict[str, int]) -> None:
        self.symbols: Mapping[str, int] = symbols
        # Every symbol, and the newest seq any was snapshotted at: past that seq, a tick is for
        # all of them (every tick but the first after a subscribe), so that set, its hash
        # included, is made once and not per client per tick (~8% of a worker's CPU at 10,000).
        self._every = frozenset(symbols)
        self._newest = max(symbols.values(), default=-1)

    async def subscribe(self, symbols: list[str]) -> Snapshot:
        """Add `symbols`; return the snapshot message that brings the client up to date on them."""
        state = await snapshot(symbols)
        self._follow({**self.symbols, **dict.fromkeys(symbols, state["seq"])})
        if self.cursor is None:
            self.cursor = state["seq"]
        return {"type": "snapshot", "reset": False, **state}

    def unsubscribe(self, symbols: list[str]) -> None:
        """Stop following `symbols`."""
        dropped = set(symbols)
        self._follow({s: seq for s, seq in self.symbols.items() if s not in dropped})

    async def resume(self, since: int, symbols: Iterable[str] = ()) -> list[FeedMessage]:
        """Return the ticks after `since` for the symbols (plus `symbols`), or a reset snapshot."""
        self._follow({**self.symbols, **dict.fromkeys(symbols, since)})
        ticks = await ticks_after(since)
        if ticks is None:
            return [await self.reset()]
        self._follow({symbol: min(seq, since) for symbol, seq in self.symbols.items()})
        self.cursor = since
        return [self._message(tick) for tick in ticks]

    def next_tick(self, text: str) -> list[TickMessage] | None:
        """Return the messages a published tick (JSON) makes when it follows on; None after a gap.

        The gap is for `on_tick` to fill from Redis.
        """
        tick = decoded_tick(text)
        if self.cursor is None or tick["seq"] <= self.cursor:
            return []  # not following yet, or already sent (a replay overtook it)
        if not self.symbols:
            self.cursor = tick["seq"]  # nothing to miss: no symbols, no messages
            return []
        if tick["seq"] > self.cursor + 1:
            return None
        return [self._message(text)]

    async def on_tick(self, text: str) -> list[FeedMessage]:
        """Return the messages a published tick (JSON) makes for this client, missed ones first."""
        following = self.next_tick(text)
        if following is not None:
            return list(following)
        assert self.cursor is not None  # next_tick returns None only when following
        missed = await ticks_after(self.cursor, decoded_tick(text)["seq"] - 1)
        if missed is None:
            return [await self.reset()]
        return [self._message(each) for each in [*missed, text]]

    async def reset(self) -> Snapshot:
        """Return a fresh snapshot of every symbol, flagged `reset`, and restart from it."""
        state = await snapshot(list(self.symbols))
        self._follow(dict.fromkeys(self.symbols, state["seq"]))
        self.cursor = state["seq"]
        return {"type": "snapshot", "reset": True, **state}

    def _message(self, text: str) -> TickMessage:
        seq = decoded_tick(text)["seq"]
        self.cursor = seq
        # A symbol's quotes from ticks older than its snapshot would send it back in time.
        if seq > self._newest:
            return tick_message(text, self._every)
        fresh = frozenset(symbol for symbol, since in self.symbols.items() if seq > since)
        return tick_message(text, fresh)
