"""The response cache's entries in this process's memory, kept exact by Redis itself.

Redis tells every instance of each change to a key under `keys.cache_prefix()`: an entry stored,
purged by tag or URL, invalidated by a write, expired or evicted; a Vary spec replaced. That is
server-assisted client-side caching in broadcast mode (`CLIENT TRACKING … BCAST PREFIX`), its
messages sent to a connection of their own subscribed to `__redis__:invalidate` (one per primary
of a Redis Cluster, each of which tracks its own keys). While that connection is down, or the
primary may have changed (a failover, a new slot map), memory is emptied and nothing is kept or
served from it: every lookup goes to Redis, as without this layer, until it listens again.

A read from Redis is kept only if no invalidation reached this process while it was in flight:
the invalidation of a write Redis made after the read may arrive first, on the other connection.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from gateway import keys
from gateway.conf import gateway_setting
from gateway.per_loop import PerLoop
from gateway.redis_client import (
    PipelinedRedis,
    PipelinedRedisCluster,
    Reply,
    RespConnection,
    async_redis,
    pack,
)

logger = logging.getLogger(__name__)

CHANNEL = b"__redis__:invalidate"
# How often the invalidation connection is checked (PING): a silent dead one is found this fast.
PING_SECONDS = 1.0
PING = pack(("PING",))
# How long a write waits for its invalidations; past it, memory is emptied instead.
SETTLE_SECONDS = 0.1
RETRY_SECONDS = (0.05, 1.0)  # the first pause before listening again after a loss, and the most
# What a kept item costs beyond its key and value: the dict slot, the record, the Entry object.
OVERHEAD_BYTES = 200


def _listening_cache() -> LocalCache:
    cache = LocalCache(async_redis(), gateway_setting("LOCAL_CACHE_BYTES"))
    cache.start()
    return cache


# local_cache(): this event loop's in-process cache (listening from its first use).
local_cache: PerLoop[LocalCache] = PerLoop(_listening_cache)


class _InvalidationConnection(RespConnection):
    """A connection in subscribed mode: invalidation messages, and the replies to its commands."""

    def __init__(self, timeout: float, cache: LocalCache) -> None:
        super().__init__(timeout)
        self.cache = cache

    def received(self, reply: Reply) -> None:
        if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
            self.cache.invalidate(reply[2])  # the keys; None when a database was flushed
        else:
            super().received(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.cache.lose(f"the invalidation connection closed: {exc or 'EOF'}")


@dataclass
class _Kept:
    value: Any
    expires_at: float  # time.monotonic(): when Redis expires the key
    size: int


class LocalCache:
    """Keys of the response cache and their values, least recently used first, within a budget."""

    def __init__(self, client: PipelinedRedis, max_bytes: int) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.kept: collections.OrderedDict[str, _Kept] = collections.OrderedDict()
        self.bytes = 0
        # Bumped by every invalidation and every loss: a read begun before one is not kept.
        self.epoch = 0
        self.listening = False
        self.connections: list[RespConnection] = []
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    # --- the memory ------------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """Return the value kept for `key`, or None (not kept, expired, or not listening)."""
        kept = self.kept.get(key)
        if kept is None:
            return None
        if kept.expires_at <= time.monotonic():
            self._drop(key)
            return None
        self.kept.move_to_end(key)
        return kept.value

    def keep(self, epoch: int, items: Sequence[tuple[str, Any, int, int]]) -> None:
        """Keep (key, value, Redis's PTTL in ms, size) items read at `epoch`, if still exact."""
        if epoch != self.epoch or not self.listening:
            return
        now = time.monotonic()
        for key, value, ttl_ms, size in items:
            size += len(key) + OVERHEAD_BYTES
            if ttl_ms <= 0 or size > self.max_bytes:
                continue
            self._drop(key)
            self.kept[key] = _Kept(value, now + ttl_ms / 1000, size)
            self.bytes += size
        while self.bytes > self.max_bytes:
            _, oldest = self.kept.popitem(last=False)
            self.bytes -= oldest.size

    def invalidate(self, changed: list[bytes] | None) -> None:
        """Drop what Redis says has changed (None: everything, a database was flushed)."""
        self.epoch += 1
        if changed is None:
            self.clear()
            return
        for key in changed:
            self._drop(key.decode())

    def clear(self) -> None:
        self.kept.clear()
        self.bytes = 0

    def _drop(self, key: str) -> None:
        kept = self.kept.pop(key, None)
        if kept is not None:
            self.bytes -= kept.size

    # --- listening -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start listening for invalidations in the background (nothing when the budget is 0)."""
        if self.max_bytes > 0 and self.task is None:
            self.client.on_reconnect.append(functools.partial(self.lose, "Redis reconnected"))
            self.task = asyncio.get_running_loop().create_task(self._listen())

    def lose(self, why: str) -> None:
        """Stop serving from memory at once: an invalidation may be missed from now on."""
        if self.listening:
            logger.warning("in-process cache emptied, lookups go to Redis: %s", why)
        self.listening = False
        self.epoch += 1
        self.clear()
        self.changed.set()

    async def settled(self) -> None:
        """Return once every invalidation of a write this process has seen answered is applied.

        Redis sends a write's invalidations before its reply, so a PING on the invalidation
        connection is answered after them: a client reads its own writes from this process.
        """
        if not self.listening:
            return
        try:
            # Bounded well below REDIS_TIMEOUT: a write must not wait on a node that died.
            async with asyncio.timeout(SETTLE_SECONDS):
                await asyncio.gather(*(connection.send(PING) for connection in self.connections))
        except (RedisError, TimeoutError) as exc:
            self.lose(f"the invalidation connection did not answer: {exc!r}")

    async def _listen(self) -> None:
        pause = RETRY_SECONDS[0]
        while True:
            self.changed.clear()
            try:
                await self._subscribe()
                pause = RETRY_SECONDS[0]
                await self._watch()
            except (RedisError, OSError) as exc:
                logger.warning("cannot listen for cache invalidations: %s", exc)
            self.lose("listening again")
            for connection in self.connections:
                connection.transport.abort()
            self.connections = []
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_SECONDS[1])

    async def _subscribe(self) -> None:
        make = functools.partial(_InvalidationConnection, self.client.timeout, self)
        if isinstance(self.client, PipelinedRedisCluster):
            for address in await self.client.primaries():
                connection = await self.client.open_node_connection(address, make)
                self.connections.append(connection)
        else:
            self.connections.append(await self.client.open_connection(make))
        for connection in self.connections:
            client_id = await connection.send(pack(("CLIENT", "ID")))
            tracking = ("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX",
                        keys.cache_prefix())  # fmt: skip
            await connection.send(pack(tracking))
            await connection.send(pack(("SUBSCRIBE", CHANNEL)))
        if self.changed.is_set():
            return  # lost while subscribing: _watch returns at once, and it starts over
        # From here on every change is heard of; a read that began before is not kept.
        self.epoch += 1
        self.listening = True

    async def _watch(self) -> None:
        """Return when a connection is lost or the primaries may have changed."""
        while not self.changed.is_set():
            try:
                async with asyncio.timeout(PING_SECONDS):
                    await self.changed.wait()
                return
            except TimeoutError:
                pass
            # A connection that does not answer within its timeout is dropped (its watchdog).
            await asyncio.gather(*(connection.send(PING) for connection in self.connections))

    def close(self) -> None:
        """Stop listening (tests, before their loop closes)."""
        if self.task is not None:
            self.task.cancel()
        for connection in self.connections:
            connection.transport.abort()
