"""Start private Redis topologies past one server: a Sentinel-managed primary, or a Redis Cluster.

    start_sentinel(processes, run_dir)   what `make cluster REDIS=sentinel` runs
    start_cluster(processes, run_dir)    what `make cluster REDIS=cluster` runs

Every node is the binary `make run` starts (dev.redis_server_binary), a child of the given
dev.Processes (so it dies with the launcher, and `stop_all` stops it), listening on 127.0.0.1 only,
on a port that was free when it started (never 6379: the machine's Redis is never touched). Its
config, data and log are under `run_dir`. tests/system/test_redis_topology.py drives both.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import redis
import redis.cluster

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dev  # scripts/dev.py: the launcher this one builds on

HOST = "127.0.0.1"
# The default ports of Redis, its cluster bus and Sentinel: a machine's own servers live there.
RESERVED_PORTS = {6379, 16379, 26379}
CLUSTER_SLOTS = 16384
# Generous: a loaded CI machine takes seconds to start a dozen servers and let them find each other.
READY_TIMEOUT = 60.0
# A node that does not answer within this is taken as down, not waited for.
PROBE_TIMEOUT = 0.5
# A Sentinel topology's data nodes: a node restarted after a failover resyncs in full from the
# primary at once, not after the 5 s a primary waits by default for more replicas to share it.
SENTINEL_NODE_OPTIONS = ("--repl-diskless-sync-delay", "0")
T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    # Held open together: ports asked for one at a time can come back twice.
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            sock = held.enter_context(socket.socket())
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if port not in RESERVED_PORTS:
                ports.append(port)
        return ports


def ask(port: int, command: Callable[[redis.Redis], T], password: str | None = None) -> T | None:
    """Return `command(client)` on 127.0.0.1:`port`, or None when the node cannot answer."""
    client = redis.Redis(
        host=HOST,
        port=port,
        password=password,
        socket_connect_timeout=PROBE_TIMEOUT,
        socket_timeout=PROBE_TIMEOUT,
        decode_responses=True,
    )
    try:
        return command(client)
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def poll(check: Callable[[], T | None], *, timeout: float, what: str) -> tuple[T, float]:
    """Return what `check` returns once it is not None, and the seconds that took."""
    started = time.monotonic()
    while (found := check()) is None:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
    return found, time.monotonic() - started


def cli_binary(server: str) -> str | None:
    """Return the redis-cli (or valkey-cli) that goes with the `server` binary, if any."""
    preferred = ("valkey-cli", "redis-cli") if "valkey" in Path(server).name else ("redis-cli",)
    for name in (*preferred, "valkey-cli"):
        beside = Path(server).with_name(name)
        if os.access(beside, os.X_OK):
            return str(beside)
        if found := shutil.which(name):
            return found
    return None


def lock_run_dir(run_dir: Path) -> IO[str]:
    """Create `run_dir` and lock it for this process; a second launcher on it stops at once."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = (run_dir / "topology.lock").open("w")
    try:
        # Released when this process exits, however it exits: no stale lock to clean up.
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise SystemExit(f"[redis] {run_dir} is in use by another launcher") from None
    return lock


def wipe_run_dir(run_dir: Path) -> None:
    """Remove everything a previous run left in `run_dir` but its lock (held by this process)."""
    for entry in run_dir.iterdir():
        if entry.name == "topology.lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def forget(processes: dev.Processes, process: subprocess.Popen) -> None:
    """Stop watching a child killed on purpose, so that its exit is not taken as a crash."""
    processes.started = [(n, p) for n, p in processes.started if p is not process]


def sigkill(processes: dev.Processes, process: subprocess.Popen) -> None:
    forget(processes, process)
    process.send_signal(signal.SIGKILL)
    process.wait()


def data_node_argv(
    binary: str, port: int, node_dir: Path, password: str | None, *extra: str
) -> list[str]:
    """Return the command of one data node: loopback only, persisted, logging into `node_dir`."""
    node_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(node_dir),
        "--appendonly", "yes",  # drafts survive a node's restart and a failover
        "--appendfsync", "everysec",
        "--save", "",
        "--logfile", str(node_dir / "redis.log"),
        "--daemonize", "no",
    ]  # fmt: skip
    if password:
        # masterauth too: after a failover any node may be the replica of any other.
        argv += ["--requirepass", password, "--masterauth", password]
    return [*argv, *extra]


@dataclass
class SentinelTopology:
    """A primary, its replicas and the sentinels that fail it over; `url` is REDIS_URL's form."""

    processes: dev.Processes
    run_dir: Path
    url: str
    master_name: str
    password: str | None
    sentinel_ports: list[int]
    primary: tuple[int, subprocess.Popen]  # the primary at start; primary_port() says who is now
    replicas: list[tuple[int, subprocess.Popen]]
    sentinels: list[tuple[int, subprocess.Popen]]
    lock: IO[str] | None = None
    killed_at: dict[int, float] = field(default_factory=dict)

    @property
    def data_nodes(self) -> list[tuple[int, subprocess.Popen]]:
        return [self.primary, *self.replicas]

    def primary_port(self) -> int:
        """Return the port of the node a sentinel names primary now."""
        for port in self.sentinel_ports:
            address = ask(port, lambda c: c.sentinel_get_master_addr_by_name(self.master_name))
            if address:
                return int(address[1])
        raise RuntimeError(f"no sentinel of {self.master_name} answers")

    def kill_primary(self) -> int:
        """SIGKILL the current primary's process (no shutdown, no last write); return its port."""
        port = self.primary_port()
        process = dict(self.data_nodes)[port]
        sigkill(self.processes, process)
        self.killed_at[port] = time.monotonic()
        return port

    def wait_for_new_primary(self, old_port: int, timeout: float = 10.0) -> tuple[int, float]:
        """Return the port of the primary that replaced `old_port`, and the seconds it took.

        The seconds count from kill_primary() of `old_port`, else from this call.
        """
        started = self.killed_at.get(old_port, time.monotonic())

        def switched() -> int | None:
            # Done when a sentinel has switched its master over (+switch-master): only then do
            # clients (redis-py's Sentinel) take its answer; the promotion itself comes earlier.
            for port in self.sentinel_ports:
                state = ask(port, lambda c: c.sentinel_master(self.master_name)) or {}
                new = state.get("port", old_port)
                if new != old_port and state["flags"] == "master":
                    # and the node agrees that it is the primary now
                    return new if ask(new, role, self.password) == "master" else None
            return None

        port, _ = poll(switched, timeout=timeout, what=f"a new primary in place of {old_port}")
        return port, time.monotonic() - started

    def restart(self, port: int) -> subprocess.Popen:
        """Start the data node of `port` again (after kill_primary), a replica of today's primary.

        It keeps its directory and resyncs from the primary; the sentinels find it by themselves.
        """
        index = [node_port for node_port, _ in self.data_nodes].index(port)
        primary = self.primary_port()
        argv = data_node_argv(
            dev.redis_server_binary(),
            port,
            self.run_dir / f"node-{index}",
            self.password,
            *SENTINEL_NODE_OPTIONS,
            "--replicaof", HOST, str(primary),
        )  # fmt: skip
        process = self.processes.start(f"redis replica {HOST}:{port}", argv, dict(os.environ))
        if index == 0:
            self.primary = (port, process)
        else:
            self.replicas[index - 1] = (port, process)
        return process

    def whole(self) -> bool:
        """Return whether every sentinel names one primary, with every replica and peer up."""
        try:
            primary = self.primary_port()
        except RuntimeError:
            return False
        return all(
            sentinel_knows_all(
                port,
                master_name=self.master_name,
                primary=primary,
                replicas=len(self.replicas),
                others=len(self.sentinel_ports) - 1,
            )
            for port in self.sentinel_ports
        )


def role(client: redis.Redis) -> str:
    return str(client.execute_command("ROLE")[0])


def sentinel_conf(
    path: Path, port: int, *, master_name: str, primary: int, quorum: int, password: str | None
) -> None:
    """Write one sentinel's config (each its own file: a sentinel rewrites it as it learns)."""
    lines = [
        f"port {port}",
        f"bind {HOST}",
        f"dir {path.parent}",
        f"logfile {path.parent / 'sentinel.log'}",
        "daemonize no",
        # Addresses stay IPs: nothing here depends on what the machine's resolver says.
        "sentinel resolve-hostnames no",
        f"sentinel monitor {master_name} {HOST} {primary} {quorum}",
        # Fast enough that a test sees a failover in seconds; a real deployment waits longer.
        # Not 1000, a sentinel's ping period: a sentinel that learns of a switch from a peer
        # then took the new primary for down ~1.03 s later on a busy machine, with its peers'
        # votes on the old one still counted (ODOWN at once, quorum 3/2), and failed it over
        # again: two primaries for seconds, clients stuck on the deposed one (Redis 7.0.15).
        f"sentinel down-after-milliseconds {master_name} 2000",
        f"sentinel failover-timeout {master_name} 5000",
        f"sentinel parallel-syncs {master_name} 1",
    ]
    if password:
        lines.append(f"sentinel auth-pass {master_name} {password}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def sentinel_url(sentinel_ports: list[int], master_name: str, password: str | None) -> str:
    """Return REDIS_URL's form of this topology (config/redis_wiring.py reads it)."""
    auth = f":{quote(password, safe='')}@" if password else ""
    nodes = ",".join(f"{HOST}:{port}" for port in sentinel_ports)
    return f"redis+sentinel://{auth}{nodes}/{master_name}/0"


def replicas_online(primary: int, count: int, password: str | None) -> bool:
    """Return whether `count` replicas are attached to `primary` and caught up (state online)."""
    info = ask(primary, lambda c: c.info("replication"), password) or {}
    attached = [info.get(f"slave{i}", {}) for i in range(int(info.get("connected_slaves", 0)))]
    return sum(1 for replica in attached if replica.get("state") == "online") >= count


def sentinel_knows_all(
    port: int, *, master_name: str, primary: int, replicas: int, others: int
) -> bool:
    """Return whether the sentinel on `port` monitors `primary`, sees its replicas and its peers."""

    def check(client: redis.Redis) -> bool:
        if client.sentinel_get_master_addr_by_name(master_name) != (HOST, primary):
            return False
        master = client.sentinel_master(master_name)
        if master["flags"] != "master":  # no s_down, o_down, disconnected: nothing pending
            return False
        seen = [
            r
            for r in client.sentinel_slaves(master_name)
            if not (r["is_sdown"] or r["is_disconnected"]) and r["master-link-status"] == "ok"
        ]
        peers = [
            s
            for s in client.sentinel_sentinels(master_name)
            if not (s["is_sdown"] or s["is_disconnected"])
        ]
        return len(seen) == replicas and len(peers) == others

    return bool(ask(port, check))


def start_sentinel(
    processes: dev.Processes,
    run_dir: Path,
    *,
    replicas: int = 2,
    sentinels: int = 3,
    master_name: str = "mymaster",
    password: str | None = None,
) -> SentinelTopology:
    """Start a primary, `replicas` replicas and `sentinels` sentinels; return once all agree."""
    if replicas < 1 or sentinels < 1:
        raise ValueError("a failover needs at least one replica and one sentinel")
    lock = lock_run_dir(run_dir)
    # A fresh topology each start, wiped only once the lock is ours. Restarting on the old data
    # would lose writes: node-0 would be primary again and the others would resync from it, so
    # whatever a failover's new primary took in since would be dropped. (The roles of the last
    # run are not known for sure: the sentinels' files name that run's ports, and a launcher
    # killed mid-failover leaves no record of who won.)
    wipe_run_dir(run_dir)
    binary = dev.redis_server_binary()
    # One call: ports from two calls could overlap, the first ones being free again.
    primary_port, *ports = free_ports(1 + replicas + sentinels)
    replica_ports, sentinel_ports = ports[:replicas], ports[replicas:]
    started = []
    for index, port in enumerate([primary_port, *replica_ports]):
        extra = ("--replicaof", HOST, str(primary_port)) if index else ()
        argv = data_node_argv(
            binary, port, run_dir / f"node-{index}", password, *SENTINEL_NODE_OPTIONS, *extra
        )
        name = f"redis {'replica' if index else 'primary'} {HOST}:{port}"
        started.append((port, processes.start(name, argv, dict(os.environ))))
    # Sentinels learn the replicas from the primary's INFO: only once they are attached.
    dev.wait_until(
        lambda: replicas_online(primary_port, replicas, password),
        timeout=READY_TIMEOUT,
        what=f"{replicas} replicas of {HOST}:{primary_port} to sync",
        processes=processes,
    )
    running = []
    for index, port in enumerate(sentinel_ports):
        conf = run_dir / f"sentinel-{index}" / "sentinel.conf"
        # Written anew each start: the old one names the ports of the last run.
        sentinel_conf(
            conf,
            port,
            master_name=master_name,
            primary=primary_port,
            quorum=min(2, sentinels),
            password=password,
        )
        name = f"redis sentinel {HOST}:{port}"
        argv = [binary, str(conf), "--sentinel"]
        running.append((port, processes.start(name, argv, dict(os.environ))))
    # Every sentinel must know every node before a test may kill the primary: one that does
    # not yet see a replica or its peers could not vote or promote, and the failover would stall.
    dev.wait_until(
        lambda: all(
            sentinel_knows_all(
                port,
                master_name=master_name,
                primary=primary_port,
                replicas=replicas,
                others=sentinels - 1,
            )
            for port in sentinel_ports
        ),
        timeout=READY_TIMEOUT,
        what=f"{sentinels} sentinels to agree on {master_name}",
        processes=processes,
    )
    return SentinelTopology(
        processes=processes,
        run_dir=run_dir,
        url=sentinel_url(sentinel_ports, master_name, password),
        master_name=master_name,
        password=password,
        sentinel_ports=sentinel_ports,
        primary=started[0],
        replicas=started[1:],
        sentinels=running,
        lock=lock,
    )


@dataclass
class ClusterTopology:
    """A Redis Cluster: primaries, each with its replicas; `url` names the primaries as seeds."""

    processes: dev.Processes
    run_dir: Path
    url: str
    nodes: list[tuple[int, subprocess.Popen]]
    seed_ports: list[int]  # the primaries at start
    lock: IO[str] | None = None
    killed_at: dict[int, float] = field(default_factory=dict)

    def client(self, **options: Any) -> redis.cluster.RedisCluster:
        """Return a cluster client that starts from the seed nodes (the caller closes it)."""
        seeds = [redis.cluster.ClusterNode(HOST, port) for port in self.seed_ports]
        return redis.cluster.RedisCluster(startup_nodes=seeds, **options)

    def live_ports(self) -> list[int]:
        return [port for port, process in self.nodes if process.poll() is None]

    def slot_owner(self, slot: int) -> int | None:
        """Return the port of `slot`'s primary as the first live node that answers sees it."""
        for port in self.live_ports():
            ranges = ask(port, lambda c: c.execute_command("CLUSTER SLOTS"))
            for start, end, primary, *_ in ranges or []:
                if start <= slot <= end:
                    return int(primary[1])
        return None

    def kill_primary_of_slot(self, slot: int) -> int:
        """SIGKILL the primary that serves `slot` (no shutdown, no last write); return its port."""
        port = self.slot_owner(slot)
        if port is None:
            raise RuntimeError(f"no live node knows who serves slot {slot}")
        sigkill(self.processes, dict(self.nodes)[port])
        self.killed_at[port] = time.monotonic()
        return port

    def wait_for_slot_owner_change(
        self, slot: int, old_port: int, timeout: float = 10.0
    ) -> tuple[int, float]:
        """Return the port of the node that took `slot` over from `old_port`, and the seconds.

        The seconds count from kill_primary_of_slot() of `old_port`, else from this call.
        """
        started = self.killed_at.get(old_port, time.monotonic())

        def taken_over() -> int | None:
            owner = self.slot_owner(slot)
            # The promoted replica says so first; the rest of the cluster agrees within a gossip.
            if owner is None or owner == old_port or ask(owner, role) != "master":
                return None
            info = ask(owner, lambda c: c.execute_command("CLUSTER INFO")) or {}
            return owner if info.get("cluster_state") == "ok" else None

        port, _ = poll(taken_over, timeout=timeout, what=f"slot {slot} to leave {old_port}")
        return port, time.monotonic() - started


def cluster_url(seed_ports: list[int]) -> str:
    """Return REDIS_URL's form of a cluster: its seed nodes (config/redis_wiring.py reads it)."""
    return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in seed_ports)


def cluster_ready(ports: list[int], primaries: int, replicas_per_primary: int) -> bool:
    """Return whether every node says the cluster is whole, and shows every replica in sync."""

    def check(client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER INFO")
        whole = (
            info["cluster_state"] == "ok"
            and int(info["cluster_slots_assigned"]) == CLUSTER_SLOTS
            and int(info["cluster_slots_ok"]) == CLUSTER_SLOTS
            and int(info["cluster_known_nodes"]) == len(ports)
            and int(info["cluster_size"]) == primaries
        )
        replication = client.info("replication")
        synced = replication["role"] == "master" or replication["master_link_status"] == "up"
        # CLUSTER SLOTS leaves out a replica until its offset is past 0: clients (RedisCluster's
        # slot map) would not know it yet.
        shards = client.execute_command("CLUSTER SLOTS")
        listed = all(len(shard) - 3 == replicas_per_primary for shard in shards)
        return whole and synced and listed

    return all(ask(port, check) for port in ports)


def start_cluster(
    processes: dev.Processes,
    run_dir: Path,
    *,
    primaries: int = 3,
    replicas_per_primary: int = 1,
) -> ClusterTopology:
    """Start a Redis Cluster of `primaries` primaries with their replicas; return once it is ok."""
    if primaries < 3:
        raise ValueError("a Redis Cluster needs at least 3 primaries")
    binary = dev.redis_server_binary()
    cli = cli_binary(binary)
    if cli is None:
        raise SystemExit(f"[redis] no redis-cli or valkey-cli beside {binary} or on PATH")
    lock = lock_run_dir(run_dir)
    count = primaries * (1 + replicas_per_primary)
    # The bus port chosen free too: the default, port + 10000, may be taken or past 65535.
    chosen = free_ports(2 * count)  # one call: ports from two calls could overlap
    ports, bus_ports = chosen[:count], chosen[count:]
    nodes = []
    for index, (port, bus_port) in enumerate(zip(ports, bus_ports, strict=True)):
        node_dir = run_dir / f"node-{index}"
        # A new cluster each start: an old nodes.conf names the ports of the last run.
        shutil.rmtree(node_dir, ignore_errors=True)
        argv = data_node_argv(
            binary,
            port,
            node_dir,
            None,
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node_dir / "nodes.conf"),
            "--cluster-node-timeout", "1000",  # a failover in seconds (the default is 15 s)
            "--cluster-port", str(bus_port),
            # A fresh primary's offset moves only with writes or these pings (10 s by default);
            # until it does, CLUSTER SLOTS hides the replicas.
            "--repl-ping-replica-period", "1",
            # A node back after a failover resyncs in full from its promoted replica: at once,
            # not after the 5 s a primary waits by default for more replicas to share the sync.
            "--repl-diskless-sync-delay", "0",
        )  # fmt: skip
        process = processes.start(f"redis cluster node {HOST}:{port}", argv, dict(os.environ))
        nodes.append((port, process))
    dev.wait_until(
        lambda: all(ask(port, lambda c: c.ping()) for port in ports),
        timeout=READY_TIMEOUT,
        what=f"{count} cluster nodes to answer PING",
        processes=processes,
    )
    create = [cli, "--cluster", "create", *(f"{HOST}:{port}" for port in ports),
              "--cluster-replicas", str(replicas_per_primary), "--cluster-yes"]  # fmt: skip
    with (run_dir / "cluster-create.log").open("wb") as log:
        result = subprocess.run(create, stdout=log, stderr=subprocess.STDOUT, timeout=60)
    if result.returncode != 0:
        raise SystemExit(f"[redis] {' '.join(create)} failed ({result.returncode}): see {log.name}")
    dev.wait_until(
        lambda: cluster_ready(ports, primaries, replicas_per_primary),
        timeout=READY_TIMEOUT,
        what="the cluster to be ok on every node",
        processes=processes,
    )
    seeds = [port for port in ports if ask(port, role) == "master"]
    return ClusterTopology(
        processes=processes,
        run_dir=run_dir,
        url=cluster_url(seeds),
        nodes=nodes,
        seed_ports=seeds,
        lock=lock,
    )
