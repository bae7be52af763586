"""The gateway's pipelined client against a real Redis Cluster: routing, redirections, failover.

One cluster (3 primaries, 3 replicas: scripts/redis_topology.py) for the module, on free loopback
ports, stopped by PID when the module ends. Each test works in slots of its own (its keys carry a
prefix of its own). The in-process cache's failover test starts the node it kills again and waits
for the cluster to be whole; the client's failover test, which leaves one primary dead, runs last.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis
import redis.cluster
from redis.exceptions import ClusterCrossSlotError, ConnectionError, ResponseError

from gateway import keys, purge, redis_client
from gateway.local_cache import LocalCache
from gateway.redis_client import PipelinedRedis, PipelinedRedisCluster, Script, command_slot
from gateway.response_cache import Entry, ResponseCache, variant_key
from tests import support
from tests.gateway.local_cache_support import get, listening_cache, lookups_on, until, until_text
from tests.missing_tools import missing_tool

sys.path.insert(0, str(support.BASE_DIR / "scripts"))

import dev  # scripts/dev.py: the Redis binary, and the processes it starts
import redis_topology

HOST = "127.0.0.1"
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        redis_topology.cli_binary(dev.redis_server_binary()) is None,
        reason=missing_tool("redis-tools"),
    ),
]


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_topology.ClusterTopology]:
    processes = dev.Processes()
    try:
        yield redis_topology.start_cluster(processes, tmp_path_factory.mktemp("cluster"))
    finally:
        processes.stop_all()


@pytest.fixture
def cluster(topology: redis_topology.ClusterTopology) -> Iterator[redis.cluster.RedisCluster]:
    """redis-py's own cluster client: the witness of what PipelinedRedis wrote."""
    client = topology.client(decode_responses=True, socket_timeout=2)
    yield client
    client.close()


@pytest_asyncio.fixture
async def client(topology: redis_topology.ClusterTopology):
    client = PipelinedRedis(topology.url, timeout=2.0)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"cluster-test:{uuid.uuid4().hex[:8]}"


def node(port: int) -> redis.Redis:
    return redis.Redis(HOST, port, decode_responses=True, socket_timeout=2)


def on_node(port: int, *command: object) -> object:
    client = node(port)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def primaries(cluster: redis.cluster.RedisCluster) -> list[int]:
    return sorted(each.port for each in cluster.get_primaries())


def owner(cluster: redis.cluster.RedisCluster, key: str) -> int:
    return int(cluster.get_node_from_key(key).port)


def keys_on_every_primary(cluster: redis.cluster.RedisCluster, prefix: str, per_node: int):
    """Return keys interleaved by node (one of each primary's, then the next…), and the ports."""
    by_port: dict[int, list[str]] = {port: [] for port in primaries(cluster)}
    n = 0
    while any(len(keys) < per_node for keys in by_port.values()):
        key = f"{prefix}:{n}"
        if len(by_port[owner(cluster, key)]) < per_node:
            by_port[owner(cluster, key)].append(key)
        n += 1
    ports = sorted(by_port)
    return [by_port[port][i] for i in range(per_node) for port in ports], ports


def count_writes(client: PipelinedRedisCluster) -> Counter[int]:
    """Count the writes on each of the client's connections from now on, by node port."""
    writes: Counter[int] = Counter()
    for (_, port), connection in client.nodes.items():
        transport = connection.transport
        write = transport.write

        def counted(data: bytes, port: int = port, write=write) -> None:
            writes[port] += 1
            write(data)

        transport.write = counted  # type: ignore[method-assign]
    return writes


def migrate(
    primary_ports: list[int],
    slot: int,
    source: int,
    target: int,
    *,
    keys: list[str] | None = None,
    finish: bool = True,
) -> None:
    """Move `slot` from `source` to `target` as redis-cli does: IMPORTING on the target,
    MIGRATING on the source, MIGRATE its `keys` (default: all); if `finish`, SETSLOT NODE on
    every primary, the target first."""
    source_id = on_node(source, "CLUSTER", "MYID")
    target_id = on_node(target, "CLUSTER", "MYID")
    on_node(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    on_node(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    if keys is None:
        keys = on_node(source, "CLUSTER", "GETKEYSINSLOT", slot, 1000)
    if keys:
        on_node(source, "MIGRATE", HOST, target, "", 0, 5000, "KEYS", *keys)
    if finish:
        for port in [target, *(port for port in primary_ports if port != target)]:
            on_node(port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)


@pytest.mark.asyncio
async def test_the_slot_of_a_key_is_the_one_redis_computes(topology, cluster):
    keys = ["plain", "{user1000}.following", "{user1000}.followers", "foo{}{bar}", "{}",
            "foo{{bar}}zap", "foo{bar}{zap}", "a{b", "a}b{", "ünïcødé", "x" * 300]  # fmt: skip
    port = topology.seed_ports[0]

    slots = [command_slot(("GET", key)) for key in keys]

    assert slots == [on_node(port, "CLUSTER", "KEYSLOT", key) for key in keys]
    assert command_slot(("EVALSHA", "0" * 40, 2, "{t}a", "{t}b")) == command_slot(("GET", "t"))
    assert command_slot(("EVAL", "return 1", 0)) is None
    assert command_slot(("PING",)) is None


@pytest.mark.asyncio
async def test_keys_in_every_primary_s_slots_are_written_and_read_back(
    topology, client, cluster, prefix
):
    # Given 300 keys, which fall in the slots of all three primaries
    keys = [f"{prefix}:{n}" for n in range(300)]
    owners = {owner(cluster, key) for key in keys}
    assert owners == set(primaries(cluster)) and len(owners) == 3

    # When each is set through PipelinedRedis, all at once, and read back
    written = await asyncio.gather(*(client.execute("SET", k, f"v{n}") for n, k in enumerate(keys)))
    writes = count_writes(client)
    read = await asyncio.gather(*(client.execute("GET", key) for key in keys))

    # Then every command reached its key's primary: redis-py's cluster client reads the same
    assert type(client) is PipelinedRedisCluster
    assert written == [b"OK"] * 300
    assert read == [f"v{n}".encode() for n in range(300)]
    assert [cluster.get(key) for key in keys] == [f"v{n}" for n in range(300)]
    assert set(client.nodes) == {(HOST, port) for port in owners}
    assert writes == {port: 1 for port in owners}  # the 300 GETs: pipelined, one write per node
    assert await client.execute("PING") == b"PONG"  # no key: any node answers


@pytest.mark.asyncio
async def test_execute_many_across_nodes_returns_the_replies_in_order_one_write_per_node(
    client, cluster, prefix
):
    # Given keys interleaved across the three primaries, and a connection to each
    keys, ports = keys_on_every_primary(cluster, prefix, per_node=4)
    await client.execute_many([("SET", key, n) for n, key in enumerate(keys)])
    writes = count_writes(client)

    # When
    replies = await client.execute_many(
        [*(("INCR", key) for key in keys), *(("GET", key) for key in keys)]
    )

    # Then
    assert replies == [*(n + 1 for n in range(12)), *(str(n + 1).encode() for n in range(12))]
    assert writes == {port: 1 for port in ports}


@pytest.mark.asyncio
async def test_an_error_reply_in_execute_many_is_raised_after_every_reply(client, cluster, prefix):
    keys, _ = keys_on_every_primary(cluster, prefix, per_node=1)
    await client.execute("SET", keys[0], "text")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await client.execute_many(
            [("LPUSH", keys[0], "x"), ("SET", keys[1], 1), ("SET", keys[2], 2)]
        )

    assert (cluster.get(keys[1]), cluster.get(keys[2])) == ("1", "2")


@pytest.mark.asyncio
async def test_a_transaction_within_one_slot_runs_on_its_node(client, cluster, prefix):
    tag = f"{{{prefix}}}"

    results = await client.transaction([
        ("SET", f"{tag}:count", 1), ("INCR", f"{tag}:count"), ("RPUSH", f"{tag}:list", "x", "y"),
    ])  # fmt: skip

    assert results == [b"OK", 2, 2]
    assert (cluster.get(f"{tag}:count"), cluster.lrange(f"{tag}:list", 0, -1)) == ("2", ["x", "y"])


@pytest.mark.asyncio
async def test_a_transaction_across_slots_is_refused_before_anything_is_sent(
    client, cluster, prefix
):
    (first, second, _), _ = keys_on_every_primary(cluster, prefix, per_node=1)
    await client.execute_many([("GET", first), ("GET", second)])  # connected to both nodes
    writes = count_writes(client)

    with pytest.raises(ClusterCrossSlotError, match="CROSSSLOT") as refused:
        await client.transaction([("SET", first, 1), ("SET", second, 2)])

    assert isinstance(refused.value, ResponseError)  # callers catch RedisError, as ever
    assert writes == {}
    assert cluster.exists(first, second) == 0


@pytest.mark.asyncio
async def test_a_script_runs_on_its_keys_node_by_evalsha_after_one_eval(
    client, cluster, prefix, monkeypatch
):
    # Given a script of two keys in one slot, which no node has yet
    script = Script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])")
    keys = [f"{{{prefix}}}:value", f"{{{prefix}}}:count"]
    where = owner(cluster, keys[0])
    for port in primaries(cluster):
        on_node(port, "SCRIPT", "FLUSH")
        on_node(port, "CONFIG", "RESETSTAT")
    monkeypatch.setattr(redis_client, "async_redis", lambda: client)

    # When it runs twice
    results = [await script(keys, ["first"]), await script(keys, ["second"])]

    # Then on its keys' node: EVALSHA, NOSCRIPT, EVAL the first time; EVALSHA alone the next
    assert results == [1, 2]
    assert cluster.get(keys[0]) == "second"
    assert {port: on_node(port, "SCRIPT", "EXISTS", script.sha) for port in primaries(cluster)} == {
        port: [port == where] for port in primaries(cluster)
    }
    stats = node(where).info("commandstats")
    assert (stats["cmdstat_eval"]["calls"], stats["cmdstat_evalsha"]["calls"]) == (1, 2)


@pytest.mark.asyncio
async def test_a_slot_moved_to_another_node_is_followed_and_the_map_corrected(
    client, cluster, prefix
):
    # Given a key the client has read from its slot's primary
    key = f"{prefix}:moved"
    await client.execute("SET", key, "kept")
    slot = command_slot(("GET", key))
    source = owner(cluster, key)
    target = next(port for port in primaries(cluster) if port != source)
    assert client.slots is not None and client.slots[slot] == (HOST, source)

    # When the slot, with its key, moves to another primary
    migrate(primaries(cluster), slot, source, target)

    # Then the client, told MOVED, reads it there and sends the slot's next commands there first
    assert await client.execute("GET", key) == b"kept"
    assert client.slots[slot] == (HOST, target)
    assert client.fetching is not None
    await client.fetching  # the map fetched again behind the MOVED, which agrees
    assert client.slots[slot] == (HOST, target)
    writes = count_writes(client)
    assert await client.execute("SET", key, "again") == b"OK"
    assert writes == {target: 1}
    assert cluster.get(key) == "again"


@pytest.mark.asyncio
async def test_during_a_migration_a_moved_key_is_read_through_asking(client, cluster, prefix):
    # Given two keys of one slot, one of which is already on the node importing the slot
    moved, stays, counter = (f"{{{prefix}}}:{name}" for name in ("moved", "stays", "counter"))
    await client.execute_many([("SET", moved, "m"), ("SET", stays, "s"), ("SET", counter, 10)])
    slot = command_slot(("GET", moved))
    source = owner(cluster, moved)
    target = next(port for port in primaries(cluster) if port != source)
    all_primaries = primaries(cluster)
    migrate(all_primaries, slot, source, target, keys=[moved, counter], finish=False)
    try:
        # When both are read, and the moved counter incremented in a transaction
        read = await client.execute_many([("GET", moved), ("GET", stays)])
        incremented = await client.transaction([("INCR", counter), ("INCR", counter)])

        # Then the source answered ASK for the moved ones, the target answered after ASKING
        assert read == [b"m", b"s"]
        assert incremented == [11, 12]
        assert client.slots is not None and client.slots[slot] == (HOST, source)  # unchanged
        # Other tests' keys may share the slot (they are not hash-tagged): look at ours alone.
        left_on_source = set(on_node(source, "CLUSTER", "GETKEYSINSLOT", slot, 1000))
        assert {moved, stays, counter} & left_on_source == {stays}
        asking = node(target).pipeline(transaction=False)
        asking.execute_command("ASKING").get(counter)
        assert asking.execute() == [True, "12"]
    finally:
        migrate(all_primaries, slot, source, target)  # the rest, and the ownership
    assert [cluster.get(key) for key in (moved, stays, counter)] == ["m", "s", "12"]


@pytest.mark.asyncio
async def test_a_cluster_whose_nodes_do_not_answer_is_a_connection_error():
    port = support.free_port()  # nothing listens there
    client = PipelinedRedis(f"redis+cluster://{HOST}:{port}", timeout=1.0)
    try:
        with pytest.raises(
            ConnectionError, match=rf"No Redis Cluster node gave its slots: .*:{port}"
        ):
            await client.execute("GET", "anything")
    finally:
        client.close()


@pytest.fixture
def one_node_cluster_with_password(tmp_path: Path) -> Iterator[int]:
    """A cluster of one node that serves every slot, behind a password."""
    # The bus port chosen free too: the default, port + 10000, may be taken or past 65535.
    port, bus_port = redis_topology.free_ports(2)
    argv = [dev.redis_server_binary(), "--port", str(port), "--bind", HOST, "--save", "",
            "--dir", str(tmp_path), "--cluster-enabled", "yes", "--cluster-port", str(bus_port),
            "--requirepass", "s3cret"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        answers = redis_topology.ask
        support.wait_for(lambda: answers(port, lambda c: c.ping(), "s3cret") is not None,
                         timeout=10, what="the one-node cluster")  # fmt: skip
        admin = redis.Redis(HOST, port, password="s3cret")
        admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        support.wait_for(lambda: admin.cluster("INFO")["cluster_state"] == "ok", timeout=10,
                         what="the one-node cluster to be ok")  # fmt: skip
        admin.close()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.asyncio
async def test_the_target_s_password_authenticates_every_node_connection(
    one_node_cluster_with_password,
):
    port = one_node_cluster_with_password
    client = PipelinedRedis(f"redis+cluster://:s3cret@{HOST}:{port}", timeout=2.0)
    wrong = PipelinedRedis(f"redis+cluster://:wrong@{HOST}:{port}", timeout=2.0)
    try:
        assert await client.execute_many([("SET", "a", 1), ("INCR", "a")]) == [b"OK", 2]
        with pytest.raises(ConnectionError, match=r"No Redis Cluster node.*refused"):
            await wrong.execute("GET", "a")
    finally:
        client.close()
        wrong.close()


# --- the in-process response cache: one invalidation connection per primary ----------------------


@pytest_asyncio.fixture
async def memory(topology, settings) -> AsyncIterator[LocalCache]:
    """This loop's in-process cache, once it listens to every primary of the cluster."""
    async with listening_cache(settings, topology.url) as memory:
        yield memory


@pytest.fixture
def response_cache(origin) -> ResponseCache:
    return ResponseCache(origin)


def paths_on_every_primary(cluster: redis.cluster.RedisCluster, prefix: str) -> dict[int, str]:
    """Return a URL path for each primary, by port: one whose cache keys that primary serves."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < len(primaries(cluster)):
        path = f"/{prefix}/{n}"
        found.setdefault(owner(cluster, keys.cache_vary(path)), path)  # a URL's keys: one slot
        n += 1
    return dict(sorted(found.items()))


async def read_into_memory(app: ResponseCache, memory: LocalCache, paths: dict[int, str]) -> None:
    """Read each path's entry from its primary into memory; check that the next read is from it."""
    for path in paths.values():
        await get(app, path)  # MISS: stored on the path's primary (unless it was already)
        await get(app, path)  # HIT from that primary: kept in memory (unless it was already)
    before = {port: lookups_on(port) for port in paths}
    writes = count_writes(memory.client)

    hits = [await get(app, path) for path in paths.values()]

    assert [hit.headers["x-cache"] for hit in hits] == ["HIT"] * len(paths)
    assert {port: lookups_on(port) for port in paths} == before  # no LOOKUP on any node
    assert writes == {}  # and not a byte to any node


def newer_entry(body: str) -> Entry:
    """An entry as another instance stores it for a path (no Vary), fresh for a minute."""
    headers = [(b"cache-control", b"public, s-maxage=60")]
    return Entry(200, headers, body.encode(), time.time(), 0, 60, 0, 0, False)


def store_elsewhere(port: int, path: str, body: str) -> None:
    """Store a new version of `path`'s entry on the node of `port`, as another instance would."""
    on_node(port, "SET", variant_key(path, [], []), newer_entry(body).pack(), "EX", 60)


def replicated(port: int, path: str) -> None:
    """Return once the replica of `port` has every write the node took (in `path`'s slot too)."""
    client = redis.Redis(HOST, port, socket_timeout=2, single_connection_client=True)
    try:
        # WAIT counts the replicas that have this connection's last write, and so all before it.
        client.set(f"replicated:{{{keys.url_hash(path)}}}", 1)
        assert client.wait(1, 2000) == 1
    finally:
        client.close()


def restart_node(topology: redis_topology.ClusterTopology, port: int) -> None:
    """Start the killed node of `port` again: it keeps its nodes.conf and rejoins as a replica."""
    old = dict(topology.nodes)[port]
    process = topology.processes.start(f"redis cluster node {HOST}:{port}", list(old.args),
                                       dict(os.environ))  # fmt: skip
    topology.nodes = [(p, process if p == port else n) for p, n in topology.nodes]


@pytest.mark.asyncio
async def test_an_entry_of_each_primary_is_read_from_memory_until_another_instance_stores_anew(
    memory, response_cache, origin, cluster, prefix
):
    # Given an entry whose keys each primary serves, read into this process's memory
    paths = paths_on_every_primary(cluster, prefix)
    assert len(paths) == 3
    await read_into_memory(response_cache, memory, paths)
    before = {port: lookups_on(port) for port in paths}

    # When another instance stores a new version of each, on its primary
    for port, path in paths.items():
        store_elsewhere(port, path, f"stored on {port}")

    # Then each one's next read is the new version, from its primary (one LOOKUP), kept again
    after = {port: await until_text(response_cache, path, f"stored on {port}")
             for port, path in paths.items()}  # fmt: skip
    assert {port: answer.headers["x-cache"] for port, answer in after.items()} == dict.fromkeys(
        paths, "HIT"
    )
    assert {port: lookups_on(port) for port in paths} == {port: before[port] + 1 for port in paths}
    again = [await get(response_cache, path) for path in paths.values()]
    assert [answer.text for answer in again] == [f"stored on {port}" for port in paths]
    assert {port: lookups_on(port) for port in paths} == {port: before[port] + 1 for port in paths}
    assert len(origin.calls) == 3


@pytest.mark.asyncio
async def test_a_purge_by_tag_from_another_instance_drops_the_entry_of_each_primary_from_memory(
    memory, response_cache, origin, cluster, prefix
):
    # Given entries of one Cache-Tag on the three primaries, read into this process's memory
    tag = f"{prefix}-product"
    origin.headers = {"cache-control": "public, s-maxage=60", "cache-tag": tag}
    paths = paths_on_every_primary(cluster, prefix)
    await read_into_memory(response_cache, memory, paths)
    origin.body = b"after the purge"

    # When another instance purges the tag (a catalog save in its Django)
    assert purge.tags([tag]) == 3

    # Then each one's next read goes to the origin, through its primary
    after = [await until_text(response_cache, path, "after the purge") for path in paths.values()]
    assert [answer.headers["x-cache"] for answer in after] == ["MISS"] * 3
    assert len(origin.calls) == 6


@pytest.mark.asyncio
async def test_a_failover_empties_memory_and_the_promoted_primary_s_changes_are_heard(
    topology, memory, response_cache, origin, cluster, prefix
):
    # Given an entry of each primary's in memory, and the first primary's replica with its keys
    paths = paths_on_every_primary(cluster, prefix)
    await read_into_memory(response_cache, memory, paths)
    victim = next(iter(paths))
    slot = command_slot(("GET", keys.cache_vary(paths[victim])))
    replicated(victim, paths[victim])
    try:
        # When that primary is SIGKILLed and its replica takes its slots over
        old = await asyncio.to_thread(topology.kill_primary_of_slot, slot)
        await until(lambda: not memory.kept, "memory to be emptied")  # at the loss, at once
        new, _ = await asyncio.to_thread(topology.wait_for_slot_owner_change, slot, old, 15)
        now = {(new if port == old else port): path for port, path in paths.items()}
        before = {port: lookups_on(port) for port in now}

        # Then, listening again (no command of this process sent to the slot since the kill),
        # it reads each entry from its primary once more, the promoted one's too
        await until(lambda: memory.listening, "listening to the new primaries", timeout=10)
        first = [await get(response_cache, path) for path in now.values()]
        assert [answer.headers["x-cache"] for answer in first] == ["HIT"] * 3
        assert {port: lookups_on(port) for port in now} == {port: before[port] + 1 for port in now}
        # and a change on each primary afterwards, the promoted one's too, is heard
        await read_into_memory(response_cache, memory, now)
        for port, path in now.items():
            store_elsewhere(port, path, f"stored on {port} after the failover")
        after = [await until_text(response_cache, path, f"stored on {port} after the failover")
                 for port, path in now.items()]  # fmt: skip
        assert [answer.headers["x-cache"] for answer in after] == ["HIT"] * 3
        assert old == victim and len(origin.calls) == 3
    finally:
        if victim not in topology.live_ports():
            restart_node(topology, victim)
        ports = [port for port, _ in topology.nodes]
        await asyncio.to_thread(
            support.wait_for,
            lambda: redis_topology.cluster_ready(ports, 3, 1),
            timeout=30,
            what="the Redis Cluster to be whole again",
        )


@pytest.mark.asyncio
async def test_after_a_primary_is_killed_its_replica_serves_the_slot(
    topology, client, cluster, prefix
):
    # Given a key its primary's replica has, and a command blocked on that primary
    key = f"{prefix}:failover"
    slot = command_slot(("GET", key))
    primary = node(owner(cluster, key))
    primary.set(key, "before")
    assert primary.wait(1, 2000) == 1
    primary.close()
    assert await client.execute("GET", key) == b"before"
    blocked = asyncio.ensure_future(client.execute("BLPOP", f"{{{key}}}:never", 0))
    await asyncio.to_thread(
        support.wait_for,
        lambda: node(owner(cluster, key)).info("clients")["blocked_clients"] == 1,
        timeout=5,
        what="the BLPOP to block",
    )

    # When the primary is SIGKILLed and its replica takes the slot over
    old = await asyncio.to_thread(topology.kill_primary_of_slot, slot)
    with pytest.raises(ConnectionError):  # the command in flight fails, and at once
        await asyncio.wait_for(blocked, timeout=1)
    new, _ = await asyncio.to_thread(topology.wait_for_slot_owner_change, slot, old, 15)

    # Then the next commands reach the new primary within seconds (until every node knows it,
    # a map may still name the dead one: those attempts fail as ConnectionError, never hang)
    loop = asyncio.get_running_loop()
    started, failures = loop.time(), []
    while True:
        try:
            value = await client.execute("GET", key)
            break
        except ConnectionError as error:
            failures.append(error)
            assert loop.time() - started < 5, failures
            await asyncio.sleep(0.05)
    print(f"[redis figures] cluster client: slot {slot} read from {new} "
          f"{loop.time() - started:.2f}s after the owner change, "
          f"{len(failures)} ConnectionError(s) before", flush=True)  # fmt: skip
    assert value == b"before"
    assert client.slots is not None and client.slots[slot] == (HOST, new)
    assert (HOST, old) not in client.nodes
    assert await client.execute("SET", key, "after") == b"OK"
    assert on_node(new, "GET", key) == "after"
