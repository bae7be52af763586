"""The gateway's Redis client: one pipelined connection per event loop (a connection is its loop's).

Every task of a loop writes its commands to the same connection without waiting for the replies
to anyone else's (pipelining); the commands sent in one turn of the loop leave in one write, and
hiredis parses the replies. redis-py's asyncio client spent ~100 µs of CPU per call here, more
than the rest of a cache HIT, on its connection pool, retries, timeouts and observability
(docs/performance.md); this one spends a few.

A Redis Cluster (`redis+cluster://`) gets PipelinedRedisCluster instead: the same interface and
errors, one such connection per primary, each command sent to the node that serves its key's slot
and the cluster's redirections followed. Not redis-py's asyncio RedisCluster: under its routing
it is redis-py's asyncio client, the ~100 µs per call above.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import ssl
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
import redis.asyncio
import redis.asyncio.sentinel
from django.conf import settings
from redis.asyncio.connection import parse_url
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ClusterCrossSlotError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.redis_wiring import RedisTarget, parse
from gateway.per_loop import PerLoop

Argument = str | bytes | int | float
# A reply's shape is its command's (or script's): the caller, who sent it, knows it.
Reply = Any
Address = tuple[str, int]  # a cluster node's (host, port)


def pack(command: Sequence[Argument]) -> bytes:
    """Return a command in RESP, as hiredis packs it."""
    # hiredis's stub declares a one-element tuple; the function takes any number of arguments.
    packed: bytes = hiredis.pack_command(tuple(command))  # type: ignore[arg-type]
    return packed


def _stores_client() -> PipelinedRedis:
    return PipelinedRedis(settings.REDIS["stores"], settings.REDIS_TIMEOUT)


# async_redis(): this event loop's client of the project's Redis (short timeouts: never a hang).
async_redis: PerLoop[PipelinedRedis] = PerLoop(_stores_client)


def _reply_error(error: ResponseError) -> ResponseError:
    return NoScriptError(str(error)) if str(error).startswith("NOSCRIPT") else error


def _target(target: RedisTarget | str) -> RedisTarget:
    return target if isinstance(target, RedisTarget) else parse("REDIS_URL", target)


class RespConnection(asyncio.Protocol):
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
        self.loop = asyncio.get_running_loop()  # once: a system call each time (gateway.per_loop)
        self.transport = cast(asyncio.Transport, transport)  # a stream connection's
        self.open = True

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                self.received(reply)
        except hiredis.ProtocolError:
            self.transport.abort()  # out of step with the server: connection_lost fails the rest

    def received(self, reply: Reply) -> None:
        """Resolve the oldest command's future with `reply`."""
        future, _ = self.waiting.popleft()
        if future.done():
            return  # its caller was cancelled; the order still holds
        if isinstance(reply, ResponseError):
            future.set_exception(_reply_error(reply))
            if str(reply).startswith("READONLY"):
                # A demoted primary (Sentinel failed over): drop it; the next command connects
                # to whichever node is primary now.
                self.transport.abort()
        else:
            future.set_result(reply)

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
        loop = self.loop
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

    def __new__(cls, target: RedisTarget | str, timeout: float) -> PipelinedRedis:
        # A cluster's client is a subclass, chosen here once: the commands to one server pay
        # nothing, not even a branch, for the cluster's routing.
        chosen: type[PipelinedRedis] = cls
        if cls is PipelinedRedis and _target(target).kind == "cluster":
            chosen = PipelinedRedisCluster
        return object.__new__(chosen)

    def __init__(self, target: RedisTarget | str, timeout: float) -> None:
        self.target = _target(target)
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
        self.protocol: RespConnection | None = None
        self.connecting = asyncio.Lock()
        # Called when a connection replaces a lost one: the server may be another (a failover).
        self.on_reconnect: list[Callable[[], None]] = []

    async def execute(self, *args: Argument) -> Reply:
        """Send one command and return its reply."""
        # A method call, not a coroutine, when the connection is open: a HIT's one command.
        protocol = self._open_connection() or await self._connect()
        return await protocol.send(pack(args))

    async def execute_many(self, commands: Sequence[Sequence[Argument]]) -> list[Reply]:
        """Send commands back to back, in one write; return their replies, in order.

        Raises the first error reply, after every reply has come back.
        """
        protocol = self._open_connection() or await self._connect()
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

    def _open_connection(self) -> RespConnection | None:
        protocol = self.protocol
        return protocol if protocol is not None and protocol.open else None

    async def _connect(self) -> RespConnection:
        async with self.connecting:  # many requests find no connection at once: open one
            if self.protocol is not None and self.protocol.open:
                return self.protocol
            protocol = await self.open_connection(functools.partial(RespConnection, self.timeout))
            replaced, self.protocol = self.protocol, protocol
            if replaced is not None:
                for callback in self.on_reconnect:
                    callback()
            return protocol

    async def open_connection(self, make: Callable[[], RespConnection]) -> RespConnection:
        """Open a connection of its own to the server (the primary), set up, of `make`'s class."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._open(make)
        except TimeoutError:
            raise RedisTimeoutError(
                f"Redis did not accept a connection within {self.timeout} s"
            ) from None
        except OSError as exc:
            raise RedisConnectionError(f"Cannot connect to Redis: {exc}") from exc

    async def _open(self, make: Callable[[], RespConnection]) -> RespConnection:
        loop = asyncio.get_running_loop()
        options = self.options
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


# Enough to follow a slot that moves while a command chases it (MOVED, then ASK), not a loop.
MAX_REDIRECTIONS = 5
# TRYAGAIN: a multi-key command whose keys a migration has split for a moment.
TRYAGAIN_PAUSE = 0.05
_REDIRECTIONS = ("MOVED ", "ASK ", "TRYAGAIN")
# Their keys come after the script (or function) and the number of keys: `EVAL script 1 key …`.
_SCRIPT_COMMANDS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})
ASKING = pack(("ASKING",))
CLUSTER_SLOTS = pack(("CLUSTER", "SLOTS"))


def command_slot(command: Sequence[Argument]) -> int | None:
    """Return the slot of a command's key; None for a command without one (any node answers it).

    The key is the first argument, or a script's first key. A command without a key but with
    arguments (ECHO, CLIENT ID) goes to its first argument's slot: any node answers it too.
    """
    if len(command) < 2:
        return None
    name = command[0]
    name = (name.decode() if isinstance(name, bytes) else str(name)).upper()
    key = command[1]
    if name in _SCRIPT_COMMANDS:
        if len(command) < 4 or int(command[2]) == 0:
            return None
        key = command[3]  # a script's keys share one slot, or Redis refuses it (CROSSSLOT)
    # Encoded as hiredis sends it; the hash tag rule ({…}) is redis-py's key_slot's.
    return key_slot(key if isinstance(key, bytes) else str(key).encode())


def _redirected(reply: Reply) -> bool:
    return isinstance(reply, ResponseError) and str(reply).startswith(_REDIRECTIONS)


def _slot_owners(reply: list[Any], asked: Address) -> list[Address]:
    """Return each slot's primary from a CLUSTER SLOTS reply of the node at `asked`.

    A slot no node serves (a cluster being set up) is sent to `asked`, which answers CLUSTERDOWN.
    """
    owners = [asked] * REDIS_CLUSTER_HASH_SLOTS
    for first, last, primary, *_replicas in reply:
        # An empty host is the node's own that answered (Redis does not always know its IP).
        primary_address = (primary[0].decode() or asked[0], int(primary[1]))
        owners[first : last + 1] = [primary_address] * (last + 1 - first)
    return owners


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a refresh nobody awaited failed: the next command that needs one retries


class _NodeConnection(RespConnection):
    """A connection to one cluster node, which tells the client when it is lost."""

    def __init__(
        self, timeout: float, address: Address, lost: Callable[[_NodeConnection], None]
    ) -> None:
        super().__init__(timeout)
        self.address = address
        self.lost = lost

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lost(self)

    def send(self, command: bytes) -> asyncio.Future[Reply]:
        if self.open:
            return super().send(command)
        # Lost while execute_many awaited another node's connection: failed, not left waiting.
        future = asyncio.get_running_loop().create_future()
        address = f"{self.address[0]}:{self.address[1]}"
        future.set_exception(RedisConnectionError(f"Redis closed the connection to {address}"))
        return future


class PipelinedRedisCluster(PipelinedRedis):
    """PipelinedRedis of a Redis Cluster (what PipelinedRedis(target) is for a cluster's target).

    One pipelined connection per primary, each command sent to the one that serves its key's
    slot, as the slot map says: fetched (CLUSTER SLOTS) on first use from a seed node or any node
    known, corrected by each MOVED and fetched again behind it, and before the next command when a
    node's connection is lost (a replica may have taken its slots over). The commands waiting on
    a lost connection fail (ConnectionError) as with one server: they may have run.
    """

    def __init__(self, target: RedisTarget | str, timeout: float) -> None:
        self.target = _target(target)
        self.timeout = timeout
        self.slots: list[Address] | None = None  # each slot's primary; None: fetch the map first
        self.fetching: asyncio.Task[list[Address]] | None = None
        self.nodes: dict[Address, _NodeConnection] = {}  # the open connections, by node
        # Called when the set of primaries may have changed: a node lost, a new slot map.
        self.on_reconnect: list[Callable[[], None]] = []
        # One lock per node: a node slow to accept does not hold back the connects to the others.
        self.node_locks: dict[Address, asyncio.Lock] = {}

    async def execute(self, *args: Argument) -> Reply:
        slot = command_slot(args)
        command = pack(args)
        connection = await self._route(slot)
        try:
            return await connection.send(command)
        except ResponseError as error:
            if not _redirected(error):
                raise
            (reply,) = await self._run(slot, [command], error)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def execute_many(self, commands: Sequence[Sequence[Argument]]) -> list[Reply]:
        slots = [command_slot(command) for command in commands]
        packed = [pack(command) for command in commands]
        # Every connection first (a map to fetch, a node to connect): then every command leaves
        # in this one turn of the loop, which is one write per node.
        connections = [await self._route(slot) for slot in slots]
        pairs = zip(connections, packed, strict=True)
        futures = [connection.send(command) for connection, command in pairs]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        # Each redirected command is resent alone: resending its neighbours would run them twice.
        redirected = [index for index, reply in enumerate(replies) if _redirected(reply)]
        followed = await asyncio.gather(
            *(self._run(slots[index], [packed[index]], replies[index]) for index in redirected)
        )
        for index, (reply,) in zip(redirected, followed, strict=True):
            replies[index] = reply
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def transaction(self, commands: Sequence[Sequence[Argument]]) -> list[Reply]:
        """Run commands in MULTI/EXEC on their slot's node: all their keys must share a slot."""
        slots = {slot for command in commands if (slot := command_slot(command)) is not None}
        if len(slots) > 1:
            raise ClusterCrossSlotError(
                f"CROSSSLOT Keys in request don't hash to the same slot (slots {sorted(slots)}): "
                "a transaction runs on one node"
            )
        unit = [pack(("MULTI",)), *(pack(command) for command in commands), pack(("EXEC",))]
        # One unit, adjacent on one connection; a redirection of any of it resends all of it
        # (EXEC then answered EXECABORT: nothing ran).
        replies = await self._run(slots.pop() if slots else None, unit)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        results: list[Reply] = replies[-1]
        for result in results:
            if isinstance(result, ResponseError):
                raise _reply_error(result)
        return results

    async def _run(
        self, slot: int | None, unit: list[bytes], redirection: Reply = None
    ) -> list[Reply]:
        """Send `unit` (a command, or a MULTI … EXEC) to `slot`'s node, or where `redirection`
        (its MOVED, ASK or TRYAGAIN reply) says; follow what it is answered. Return its replies,
        errors in place."""
        for _ in range(MAX_REDIRECTIONS + 1):
            address: Address | None = None
            asking = False
            if redirection is not None:
                kind, _, where = str(redirection).partition(" ")
                if kind == "TRYAGAIN":
                    await asyncio.sleep(TRYAGAIN_PAUSE)  # then to the slot's node again
                else:
                    moved_slot, _, node = where.partition(" ")
                    host, _, port = node.rpartition(":")
                    address, asking = (host, int(port)), kind == "ASK"
                    if kind == "MOVED":
                        self._moved(int(moved_slot), address)
            connection = await self._route(slot, address)
            # ASK: the node importing the slot answers for it only after ASKING, and only the
            # next command (a MULTI's every command), so the map keeps the slot where it was.
            sent = [connection.send(ASKING)] if asking else []
            sent += [connection.send(command) for command in unit]
            replies = (await asyncio.gather(*sent, return_exceptions=True))[len(sent) - len(unit) :]
            redirection = next((reply for reply in replies if _redirected(reply)), None)
            if redirection is None:
                return replies
        error = ResponseError(f"{MAX_REDIRECTIONS} redirections, still: {redirection}")
        return [error] * len(unit)

    def _moved(self, slot: int, address: Address) -> None:
        if self.slots is not None:
            self.slots[slot] = address
        # One slot moved, others probably with it (a resharding, a failover): fetch the whole
        # map, behind the commands, which meanwhile follow the old map and its MOVED replies.
        self._refresh()

    async def _route(self, slot: int | None, address: Address | None = None) -> _NodeConnection:
        """Return the connection to `address`, else to `slot`'s node (None: any node's)."""
        if address is None:
            owners = self.slots
            if owners is None:
                # Shielded: a caller cancelled does not cancel the fetch other callers await.
                owners = await asyncio.shield(self._refresh())
            address = owners[slot or 0]
        connection = self.nodes.get(address)
        if connection is not None and connection.open:
            return connection
        try:
            return await self._connect_node(address)
        except RedisError:
            # Down: its replica may be taking its slots over. The next command asks the cluster.
            self.slots = None
            raise

    def _refresh(self) -> asyncio.Task[list[Address]]:
        """Fetch the slot map: one fetch for every command that needs it meanwhile."""
        if self.fetching is None or self.fetching.done():
            self.fetching = asyncio.create_task(self._fetch_slots())
            self.fetching.add_done_callback(_retrieve)
        return self.fetching

    async def _fetch_slots(self) -> list[Address]:
        # The nodes connected first (no connect to wait for), then the seeds, then any node known.
        known = dict.fromkeys([*self.nodes, *self.target.nodes, *(self.slots or ())])
        errors = []
        for address in known:
            try:
                connection = self.nodes.get(address) or await self._connect_node(address)
                reply = await connection.send(CLUSTER_SLOTS)
            except RedisError as error:
                errors.append(f"{address[0]}:{address[1]}: {error}")
                continue
            previous, self.slots = self.slots, _slot_owners(reply, address)
            if previous is not None and set(previous) != set(self.slots):
                for callback in self.on_reconnect:
                    callback()
            return self.slots
        raise RedisConnectionError(f"No Redis Cluster node gave its slots: {'; '.join(errors)}")

    async def _connect_node(self, address: Address) -> _NodeConnection:
        # Many requests find no connection at once: open one.
        async with self.node_locks.setdefault(address, asyncio.Lock()):
            connection = self.nodes.get(address)
            if connection is not None and connection.open:
                return connection
            connection = await self._open_node(address)
            self.nodes[address] = connection
            return connection

    async def primaries(self) -> list[Address]:
        """Return the address of every primary that serves slots, as the slot map says now."""
        owners = self.slots if self.slots is not None else await self._refresh()
        return sorted(set(owners))

    async def _open_node(
        self, address: Address, make: Callable[[], RespConnection] | None = None
    ) -> _NodeConnection:
        """Open a connection to one node: a _NodeConnection, else one of `make`'s class."""
        loop = asyncio.get_running_loop()
        host, port = address
        make = make or functools.partial(_NodeConnection, self.timeout, address, self._lost)
        connection: RespConnection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                _, connection = await loop.create_connection(make, host, port)
                if self.target.password:  # no SELECT: a cluster has database 0 alone
                    credentials = [self.target.username, self.target.password]
                    auth = ("AUTH", *[part for part in credentials if part is not None])
                    await connection.send(pack(auth))
        except TimeoutError:
            if connection is not None:
                connection.transport.close()
            raise RedisTimeoutError(
                f"Redis {host}:{port} did not accept a connection within {self.timeout} s"
            ) from None
        except OSError as exc:
            raise RedisConnectionError(f"Cannot connect to Redis {host}:{port}: {exc}") from exc
        except ResponseError as exc:
            if connection is not None:
                connection.transport.close()
            raise RedisConnectionError(f"Redis refused the connection's setup: {exc}") from exc
        return connection  # type: ignore[return-value]  # of `make`'s class when given

    async def open_node_connection(
        self, address: Address, make: Callable[[], RespConnection]
    ) -> RespConnection:
        """Open a connection of its own to one node, set up, of `make`'s class."""
        try:
            return await self._open_node(address, make)
        except RedisError:
            # Down, as _route's: its replica may be taking its slots over. The next caller of
            # primaries() asks the cluster, not the map that named it (which nothing else might
            # correct, with no command to its slots).
            self.slots = None
            raise

    def _lost(self, connection: _NodeConnection) -> None:
        if self.nodes.get(connection.address) is connection:
            del self.nodes[connection.address]
            self.slots = None  # the node may be down: who serves its slots now?
            for callback in self.on_reconnect:
                callback()

    def close(self) -> None:
        """Close every node's connection (tests, before their loop closes)."""
        if self.fetching is not None:
            self.fetching.cancel()
        for connection in list(self.nodes.values()):
            connection.transport.close()


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
