"""Redis past one server, as `make cluster REDIS=sentinel|cluster` starts it: real processes.

Each test starts its own topology (scripts/redis_topology.py) on free loopback ports, never 6379,
and stops every process of it, by PID, when it ends. The failover times are printed (`-s`).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.sentinel

from tests import support
from tests.missing_tools import missing_tool

sys.path.insert(0, str(support.BASE_DIR / "scripts"))

import dev
import redis_topology

pytestmark = pytest.mark.system

HOST = "127.0.0.1"
MACHINE_REDIS_PORTS = {6379, 16379, 26379}
needs_cli = pytest.mark.skipif(
    redis_topology.cli_binary(dev.redis_server_binary()) is None,
    reason=missing_tool("redis-tools"),
)


def report(figure: str) -> None:
    print(f"[redis figures] {figure}", flush=True)


@pytest.fixture
def processes() -> Iterator[dev.Processes]:
    """Own the topology's processes; stop each of them, by PID, however the test ends."""
    started = dev.Processes()
    try:
        yield started
    finally:
        started.stop_all()


def value(port: int, key: str) -> str | None:
    """Return `key` as the node on `port` holds it (None: not there, or no answer)."""
    return redis_topology.ask(port, lambda client: client.get(key))


def role(port: int) -> str | None:
    return redis_topology.ask(port, redis_topology.role)


def test_sentinel_promotes_a_replica_that_has_the_primary_s_writes(
    processes: dev.Processes, tmp_path: Path
):
    topology = redis_topology.start_sentinel(processes, tmp_path / "sentinel")
    sentinels = ",".join(f"{HOST}:{port}" for port in topology.sentinel_ports)
    data_ports = [port for port, _ in topology.data_nodes]
    replica_ports = [port for port, _ in topology.replicas]
    sentinel = redis.sentinel.Sentinel(
        [(HOST, port) for port in topology.sentinel_ports], socket_timeout=1
    )
    primary = sentinel.master_for("mymaster", socket_timeout=2, decode_responses=True)
    key = f"topology-test:{uuid.uuid4()}"
    try:
        assert topology.url == f"redis+sentinel://{sentinels}/mymaster/0"
        assert len(topology.sentinel_ports) == 3 and len(replica_ports) == 2
        assert not MACHINE_REDIS_PORTS & {*topology.sentinel_ports, *data_ports}
        assert topology.primary_port() == topology.primary[0]

        primary.set(key, "kept")
        # WAIT 1: a replica acknowledged the write, so that one serves it already.
        assert primary.execute_command("WAIT", 1, 5000) >= 1
        assert "kept" in [value(port, key) for port in replica_ports]
        # Whichever replica the sentinels promote must have it: the other one catches up too.
        support.wait_for(
            lambda: all(value(port, key) == "kept" for port in replica_ports),
            timeout=5,
            what="the key on both replicas",
        )

        old = topology.kill_primary()
        new, seconds = topology.wait_for_new_primary(old, timeout=10)
        report(f"sentinel: 127.0.0.1:{new} primary {seconds:.2f}s after SIGKILL of {old}")

        assert old == topology.primary[0]
        assert new in replica_ports and seconds < 10
        assert (role(new), value(new, key)) == ("master", "kept")
        # The client a consumer holds follows the failover: no restart, and the key is there.
        assert primary.get(key) == "kept"
    finally:
        primary.close()


@needs_cli
def test_a_cluster_of_three_replicated_primaries_covers_every_slot(
    processes: dev.Processes, tmp_path: Path
):
    topology = redis_topology.start_cluster(processes, tmp_path / "cluster")
    client = topology.client(decode_responses=True, socket_timeout=2)
    try:
        seeds = ",".join(f"{HOST}:{port}" for port in topology.seed_ports)
        ports = {port for port, _ in topology.nodes}
        assert topology.url == f"redis+cluster://{seeds}"
        assert len(ports) == 6 and not MACHINE_REDIS_PORTS & ports
        infos = [client.cluster_info(target_nodes=each) for each in client.get_nodes()]
        assert len(infos) == 6
        for info in infos:
            assert info["cluster_state"] == "ok"
            assert int(info["cluster_slots_assigned"]) == redis_topology.CLUSTER_SLOTS
            assert (int(info["cluster_size"]), int(info["cluster_known_nodes"])) == (3, 6)

        slots = client.cluster_slots()
        covered = sorted(slot for start, end in slots for slot in range(start, end + 1))
        primaries = {shard["primary"][1] for shard in slots.values()}
        replicas = {port for shard in slots.values() for _, port in shard["replicas"]}
        assert covered == list(range(redis_topology.CLUSTER_SLOTS))
        assert primaries == set(topology.seed_ports) and len(primaries) == 3
        assert all(len(shard["replicas"]) == 1 for shard in slots.values())
        assert replicas == ports - primaries

        # One key for each primary: keys whose slots are served by different nodes.
        placed: dict[int, str] = {}
        for index in range(1000):
            key = f"topology-test:{index}"
            placed.setdefault(client.get_node_from_key(key).port, key)
            if len(placed) == 3:
                break
        for key in placed.values():
            client.set(key, "placed")

        assert len({client.keyslot(key) for key in placed.values()}) == 3
        for port, key in placed.items():
            assert value(port, key) == "placed"  # on the node itself, not through the client
            assert redis_topology.ask(port, lambda node: node.dbsize()) == 1
    finally:
        client.close()


@needs_cli
def test_a_cluster_replica_takes_over_the_slots_of_a_killed_primary(
    processes: dev.Processes, tmp_path: Path
):
    topology = redis_topology.start_cluster(processes, tmp_path / "cluster")
    client = topology.client(decode_responses=True, socket_timeout=2)
    key = f"topology-test:{uuid.uuid4()}"
    try:
        slot = client.keyslot(key)
        owner = topology.slot_owner(slot)
        client.set(key, "kept")
        # Replication is asynchronous: once the replica acknowledged it, a failover keeps it.
        assert redis_topology.ask(owner, lambda node: node.execute_command("WAIT", 1, 5000)) == 1

        old = topology.kill_primary_of_slot(slot)
        new, seconds = topology.wait_for_slot_owner_change(slot, old, timeout=10)
        report(f"cluster: slot {slot} on 127.0.0.1:{new} {seconds:.2f}s after SIGKILL of {old}")

        assert old == owner and new != old and seconds < 10
        assert (role(new), value(new, key)) == ("master", "kept")
        # The cluster client finds the new owner by itself (MOVED, or a refreshed slot map).
        assert client.get(key) == "kept"
    finally:
        client.close()
