"""The gateway's Redis client: one pipelined connection per event loop (a connection is its loop's).

Every task of a loop writes its commands to the same connection without waiting for the replies
to anyone else's (pipelining); the commands sent in one turn of the loop leave in one write, and
hiredis parses the replies. redis-py's asyncio client spent ~100 µs of CPU per call here, more
than the rest of a cache HIT, on its connection pool, retries, timeouts and observability
(docs/performance.md); this one spends a few.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import ssl
import weakref
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio
import redis.asyncio.sentinel
from django.conf import settings
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.redis_wiring import RedisTarget, parse

Argument = str | bytes | int | float
# A reply's shape is its command's (or script's): the caller, who sent it, knows it.
Reply = Any

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PipelinedRedis] = (
    weakref.WeakKeyDictionary()
)


def pack(command: Sequence[Argument]) -> bytes:
    """Return a command in RESP, as hiredis packs it."""
    # hiredis's stub declares a one-element tuple; the function takes any number of arguments.
    packed: bytes = hiredis.pack_command(tuple(command))  # type: ignore[arg-type]
    return packed


def async_redis() -> PipelinedRedis:
    """Return this event loop's client of the project's Redis (short timeouts: never a hang)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = PipelinedRedis(settings.REDIS["stores"], settings.REDIS_TIMEOUT)
    return client


def _reply_error(error: ResponseError) -> ResponseError:
    return NoScriptError(str(error)) if str(error).startswith("NOSCRIPT") else error


class _RespProtocol(asyncio.Protocol):
    """One connection: a future per command sent, resolved as the replies come back in order.

    One timer per connection, not one per command, watches the oldest unanswered command: past
    its deadline the connection is dropped and every command waiting on it fails at once.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: collections.deque[tuple[asyncio.Future[Reply], float]] = collections.deque()
        self.unsent: list[bytes] = []
        self.transport: asyncio.Transport  # set by connection_made, before any other call
        self.open = False
        self.timed_out = False
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream connection's
        self.open = True

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                future, _ = self.waiting.popleft()
                if future.done():
                    continue  # its caller was cancelled; the order still holds
                if isinstance(reply, ResponseError):
                    future.set_exception(_reply_error(reply))
                    if str(reply).startswith("READONLY"):
                        # A demoted primary (Sentinel failed over): drop it; the next command
                        # connects to whichever node is primary now.
                        self.transport.abort()
                else:
                    future.set_result(reply)
        except hiredis.ProtocolError:
            self.transport.abort()  # out of step with the server: connection_lost fails the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.watchdog is not None:
            self.watchdog.cancel()
        error: redis.RedisError
        if self.timed_out:
            error = RedisTimeoutError(f"Redis did not answer within {self.timeout} s")
        else:
            error = RedisConnectionError(f"Redis closed the connection: {exc or 'EOF'}")
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, command: bytes) -> asyncio.Future[Reply]:
        """Queue a packed command; return the future of its reply."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((future, loop.time() + self.timeout))
        if self.watchdog is None:
            self.watchdog = loop.call_later(self.timeout, self.watch)
        # One write per turn of the loop for all the commands sent in it: a write is a system
        # call, and cost more than the rest of a command here.
        if not self.unsent:
            loop.call_soon(self.flush)
        self.unsent.append(command)
        return future

    def flush(self) -> None:
        if self.open:
            self.transport.write(b"".join(self.unsent))
        self.unsent.clear()

    def watch(self) -> None:
        self.watchdog = None
        if not self.waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = self.waiting[0][1]
        if deadline <= loop.time():
            self.timed_out = True
            self.transport.abort()
        else:
            self.watchdog = loop.call_at(deadline, self.watch)


class PipelinedRedis:
    """Commands from every task of a loop on one connection, none waiting for another's reply.

    Raises redis-py's exceptions (its ConnectionError, TimeoutError, ResponseError, NoScriptError),
    so callers catch `redis.RedisError` as with redis-py. A command unanswered within `timeout`
    seconds drops the connection; the next command reconnects. A rediss:// URL verifies the
    server's certificate against the system's CAs.
    """

    def __init__(self, target: RedisTarget | str, timeout: float) -> None:
        self.target = target if isinstance(target, RedisTarget) else parse("REDIS_URL", target)
        self.sentinel: redis.asyncio.sentinel.Sentinel | None = None
        if self.target.kind == "sentinel":
            self.options: dict[str, Any] = {
                "db": self.target.db,
                "username": self.target.username,
                "password": self.target.password,
            }
            timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
            self.sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]  # redis-py's sentinel module has no hints
                list(self.target.nodes), sentinel_kwargs=timeouts
            )
        else:
            self.options = dict(parse_url(self.target.url))
        self.timeout = timeout
        self.protocol: _RespProtocol | None = None
        self.connecting = asyncio.Lock()

    async def execute(self, *args: Argument) -> Reply:
        """Send one command and return its reply."""
        protocol = await self._connection()
        return await protocol.send(pack(args))

    async def execute_many(self, commands: Sequence[Sequence[Argument]]) -> list[Reply]:
        """Send commands back to back, in one write; return their replies, in order.

        Raises the first error reply, after every reply has come back.
        """
        protocol = await self._connection()
        futures = [protocol.send(pack(command)) for command in commands]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def transaction(self, commands: Sequence[Sequence[Argument]]) -> list[Reply]:
        """Run commands in MULTI/EXEC, with no other client's command in between (no rollback)."""
        # Sent together and without a pause, no other task's command can land inside the MULTI.
        replies = await self.execute_many([("MULTI",), *commands, ("EXEC",)])
        results: list[Reply] = replies[-1]
        for result in results:
            if isinstance(result, ResponseError):
                raise _reply_error(result)
        return results

    async def _connection(self) -> _RespProtocol:
        protocol = self.protocol
        if protocol is None or not protocol.open:
            protocol = await self._connect()
        return protocol

    async def _connect(self) -> _RespProtocol:
        async with self.connecting:  # many requests find no connection at once: open one
            if self.protocol is not None and self.protocol.open:
                return self.protocol
            try:
                async with asyncio.timeout(self.timeout):
                    protocol = await self._open()
            except TimeoutError:
                raise RedisTimeoutError(
                    f"Redis did not accept a connection within {self.timeout} s"
                ) from None
            except OSError as exc:
                raise RedisConnectionError(f"Cannot connect to Redis: {exc}") from exc
            self.protocol = protocol
            return protocol

    async def _open(self) -> _RespProtocol:
        loop = asyncio.get_running_loop()
        options = self.options
        make = functools.partial(_RespProtocol, self.timeout)
        if self.sentinel is not None:
            # Asked on every connect, so a failover needs no restart (MasterNotFoundError, a
            # ConnectionError, when no sentinel knows a primary).
            host, port = await self.sentinel.discover_master(self.target.master_name)
            _, protocol = await loop.create_connection(make, host, port)
        elif "path" in options:
            _, protocol = await loop.create_unix_connection(make, options["path"])
        else:
            tls = options.get("connection_class") is redis.asyncio.SSLConnection
            _, protocol = await loop.create_connection(
                make,
                options.get("host", "localhost"),
                options.get("port", 6379),
                ssl=ssl.create_default_context() if tls else None,
            )
        handshake = []
        if options.get("password"):
            credentials = [options.get("username"), options["password"]]
            auth = ("AUTH", *[part for part in credentials if part is not None])
            handshake.append(protocol.send(pack(auth)))
        if options.get("db"):
            handshake.append(protocol.send(pack(("SELECT", options["db"]))))
        if self.sentinel is not None:
            handshake.append(protocol.send(pack(("ROLE",))))
        try:
            replies = await asyncio.gather(*handshake)
        except ResponseError as exc:
            protocol.transport.close()
            raise RedisConnectionError(f"Redis refused the connection's setup: {exc}") from exc
        if self.sentinel is not None and replies[-1][0] != b"master":
            # The sentinels' answer was stale (a failover in progress): not a primary to write to.
            protocol.transport.close()
            raise RedisConnectionError("the node the sentinels named is no longer the primary")
        return protocol

    def close(self) -> None:
        """Close the connection (tests, before their loop closes)."""
        if self.protocol is not None and self.protocol.open:
            self.protocol.transport.close()


class Script:
    """A Lua script run by its SHA1 (EVALSHA): its text is sent only when Redis lacks it."""

    # redis-py's AsyncScript needs redis-py's client; its NOSCRIPT path is also SCRIPT LOAD plus
    # EVALSHA (two more round trips) where EVAL is one.

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[Argument] = ()) -> Reply:
        """Run it on this loop's client, in one round trip (two the first time a server sees it)."""
        client = async_redis()
        try:
            return await client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # A new or restarted Redis: EVAL runs the script and caches it for the next EVALSHA.
            return await client.execute("EVAL", self.text, len(keys), *keys, *args)
