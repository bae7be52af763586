"""A Redis Cluster under two instances, as `make cluster REDIS=cluster` runs it: faults under load.

One topology for the module: a Redis Cluster of 3 primaries and 3 replicas (redis_topology.py)
for the stores and the app cache, a plain server for the channel layer and the broker, PostgreSQL,
two instances, a worker, a beat and nginx (scripts/cluster.py). Load goes through nginx; what was
acknowledged is read back through each instance directly. Each test leaves the cluster whole.
Figures are printed as `[cluster-redis figures]` lines (`-s`).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.test import override_settings
from redis.cluster import key_slot

from catalog import cache_keys as catalog_keys
from config.settings.base import REDIS_TIMEOUT
from gateway import keys as gateway_keys
from sessions_demo import keys as session_keys
from tests import support
from tests.missing_tools import missing_tool
from tests.system.conftest import CREATE_ACCOUNTS, PASSWORD, PRODUCTS, PrivatePostgres, postgres_bin

sys.path.insert(0, str(support.BASE_DIR / "scripts"))

import cluster as launcher
import dev
import redis_topology

pytestmark = pytest.mark.system

HOST = redis_topology.HOST
# The instances' key prefix: the names this module computes from the keys modules are theirs.
APP_PREFIX = "sc-rcluster"
LOAD_USERS = [f"load{n}" for n in range(1, 9)]
MOVER = "mover"  # the user whose slot is migrated
ACCOUNTS = {"admin": True, **dict.fromkeys([*LOAD_USERS, MOVER], False)}
# The slowest a request may be while a primary dies: 3 x REDIS_TIMEOUT (1 s, what one Redis call
# may take before it counts as down). A draft create is the longest path: after the gateway's
# throttle script (a node that is gone refuses at once), the Idempotency-Key claim and the create
# script each give up after REDIS_TIMEOUT, and the WAIT after the script waits REDIS_TIMEOUT for a
# replica at most.
SLOWEST_REQUEST = 3 * REDIS_TIMEOUT
LOAD_SECONDS = 15.0
KILL_AFTER = 3.0
WRITES_BACK_WITHIN = 10.0
# Until the killed node is back as its replica, the promoted one has none: a WAIT for 1 fails.
RESTART_AFTER_FAILOVER = 2.0
PACE = 0.02  # seconds between one load task's requests
# Between one user's drafts: 15 s of them stay under sessions_demo's MAX_DRAFTS (100) per user.
DRAFT_PACE = 0.2
RETRY_PAUSE = 0.1  # before a failed create is sent again with its Idempotency-Key
# How long a failed create is retried with its key: the writes back, and a claim its attempt could
# not give back (its node died) lapsed (sessions_demo's IDEMPOTENCY_LOCK_TTL, 10 s).
CLAIM_RETRIED_FOR = WRITES_BACK_WITHIN + 10.0
REDIS_DOWN = {"detail": "Redis is unavailable; try again shortly.", "code": "service_unavailable"}
# A line nginx's inner server (the one in front of the instances) logs: the instance's own status.
UPSTREAM_LINE = re.compile(r'"(?P<request>[A-Z]+ \S+) HTTP/1\.1" (?P<status>\d{3}) upstream=127')


def report(figure: str) -> None:
    print(f"[cluster-redis figures] {figure}", flush=True)


def bearer(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def app_key(make: Callable[..., str], *args: Any) -> str:
    """Return the name of a Redis key as the instances spell it (their REDIS_KEY_PREFIX)."""
    with override_settings(REDIS_KEY_PREFIX=APP_PREFIX):
        return make(*args)


def slot_of(key: str) -> int:
    return key_slot(key.encode())


@dataclass
class RedisClusterUnderTest:
    """Two instances behind nginx on a Redis Cluster, and the handles the faults need."""

    base_url: str
    cluster: launcher.Cluster
    topology: redis_topology.ClusterTopology
    postgres: PrivatePostgres
    logs: Path  # the instances', worker's, beat's and nginx's logs; redis-cluster/ the nodes'

    def instance_urls(self) -> list[str]:
        """Each instance's own address, past nginx."""
        return [f"http://127.0.0.1:{port}" for port in self.cluster.app_ports]

    def token(self, username: str) -> dict[str, str]:
        """Log in through nginx; return the Authorization header of the access token."""
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            login = http.post(
                "/api/v1/auth/token/", json={"username": username, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            return bearer(login.json()["access"])

    def user_id(self, auth: dict[str, str]) -> str:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            me = http.get("/api/v1/me/", headers=auth)
        assert me.status_code == 200, me.text
        return str(me.json()["id"])

    def primaries(self) -> list[int]:
        ports = self.topology.live_ports()
        return [port for port in ports if redis_topology.ask(port, redis_topology.role) == "master"]

    def restart_node(self, port: int) -> None:
        """Start the killed node of `port` again: it keeps its nodes.conf and rejoins a replica."""
        old = dict(self.topology.nodes)[port]
        name = f"redis cluster node {HOST}:{port}"
        process = self.topology.processes.start(name, list(old.args), dict(os.environ))
        self.topology.nodes = [(p, process if p == port else n) for p, n in self.topology.nodes]

    def wait_until_whole(self, timeout: float = 30) -> float:
        """Wait until every node says the cluster is ok, every replica in sync; return seconds."""
        ports = [port for port, _ in self.topology.nodes]
        started = time.monotonic()
        support.wait_for(
            lambda: redis_topology.cluster_ready(ports, 3, 1),
            timeout=timeout,
            what="the Redis Cluster to be whole again",
        )
        return time.monotonic() - started

    def access_log_size(self) -> int:
        return (self.cluster.run_dir / "access.log").stat().st_size

    def instance_statuses(self, since: int) -> list[tuple[str, int]]:
        """The (request, status) of every answer an instance gave nginx since offset `since`."""
        with (self.cluster.run_dir / "access.log").open() as log:
            log.seek(since)
            lines = log.read().splitlines()
        found = [UPSTREAM_LINE.search(line) for line in lines]
        return [(m["request"], int(m["status"])) for m in found if m]


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory) -> Iterator[RedisClusterUnderTest]:
    """`make cluster REDIS=cluster` with PostgreSQL, for this module; then stop every process."""
    if launcher.nginx_binary() is None:
        pytest.skip(missing_tool("nginx"))
    if redis_topology.cli_binary(dev.redis_server_binary()) is None:
        pytest.skip(missing_tool("redis-tools"))
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(missing_tool("postgresql"))
    logs = tmp_path_factory.mktemp("redis-cluster-logs")
    root = Path(tempfile.mkdtemp(prefix="sc-rcluster-"))  # short: unix socket paths
    processes = launcher.Processes()
    postgres = None
    try:
        postgres = PrivatePostgres(bin_dir, root / "pg")
        postgres.start()
        env = support.child_env(
            # config.settings.test cannot start on a Cluster: it appends its database number to
            # every Redis URL (with_db), and a redis+cluster:// URL may name none. The instances
            # run the settings `make cluster` runs, with the test suite's generous rates.
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DEBUG="false",
            DATABASE_URL=postgres.url,
            REDIS_KEY_PREFIX=APP_PREFIX,
            **{
                f"GATEWAY_RATE_{policy}": "1000000/sec"
                for policy in ("ANON", "USER", "AUTH", "WRITE", "CONNECT")
            },
        )
        # The topology is the whole of Redis here, as with `make cluster REDIS=cluster`.
        for name in ("REDIS_URL", *launcher.REDIS_CONSUMER_VARIABLES):
            env.pop(name, None)
        topology, _, _ = launcher.start_redis_cluster(
            processes, logs / "redis-cluster", root / "redis", env
        )
        dev.manage(env, "migrate", "--noinput", "--verbosity", "0")
        dev.manage(env, "seed_catalog", "--products", str(PRODUCTS))
        dev.manage(env, "shell", "-c", CREATE_ACCOUNTS.format(accounts=ACCOUNTS, password=PASSWORD))
        running = launcher.start(
            processes, run_dir=root / "nginx", child_env=env, instances=2, log_dir=logs
        )
        yield RedisClusterUnderTest(running.base_url, running, topology, postgres, logs)
    finally:
        processes.stop_all()
        if postgres is not None:
            postgres.stop()
        if (root / "nginx" / "access.log").exists():
            shutil.copy(root / "nginx" / "access.log", logs / "nginx-access.log")
        shutil.rmtree(root, ignore_errors=True)


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One request of the load and what came back."""

    kind: str  # "write", "read", ...
    who: str  # the user, or the product path
    started: float
    ended: float
    status: int
    body: Any
    headers: httpx.Headers | None = None
    key: str = ""
    after_failure: bool = False  # a retry of an Idempotency-Key whose last attempt failed

    @property
    def replayed(self) -> bool:
        return self.headers is not None and self.headers.get("idempotent-replayed") == "true"

    @property
    def seconds(self) -> float:
        return self.ended - self.started


async def send(http: httpx.AsyncClient, kind: str, who: str, method: str, url: str, **kw) -> Answer:
    started = time.monotonic()
    response = await http.request(method, url, **kw)
    ended = time.monotonic()
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return Answer(kind, who, started, ended, response.status_code, body, response.headers)


@dataclass
class Window:
    """How long a load runs: until `ends`, which the test may set while it runs."""

    ends: float = math.inf

    def open(self) -> bool:
        return time.monotonic() < self.ends

    def close_in(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds


@dataclass
class Load:
    """What a load run sent and what was acknowledged."""

    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[str, dict[str, dict]] = field(default_factory=dict)  # user: id: draft
    retried: list[tuple[str, list[int]]] = field(default_factory=list)  # key, its statuses
    abandoned: list[tuple[str, list[int]]] = field(default_factory=list)  # never got its 201

    def of(self, kind: str) -> list[Answer]:
        return [answer for answer in self.answers if answer.kind == kind]


async def draft_writer(
    http: httpx.AsyncClient, user: str, auth: dict, window: Window, load: Load, retry_for: float
) -> None:
    """Create drafts while `window` is open, a new Idempotency-Key each; a failed one is retried
    with its key until it is answered 201, for `retry_for` seconds at most (then abandoned)."""
    load.acknowledged.setdefault(user, {})
    number = 0
    while window.open():
        number += 1
        key = f"{user}-{number}-{uuid.uuid4()}"
        headers = {**auth, "Idempotency-Key": key}
        statuses = []
        first_sent = time.monotonic()
        while True:
            answer = await send(
                http, "write", user, "POST", "/api/v1/drafts/",
                json={"title": f"{user} {number}"}, headers=headers,
            )  # fmt: skip
            answer.key, answer.after_failure = key, bool(statuses)
            load.answers.append(answer)
            statuses.append(answer.status)
            if answer.status == 201:
                load.acknowledged[user][answer.body["id"]] = answer.body
                break
            if time.monotonic() > first_sent + retry_for:
                load.abandoned.append((key, statuses))
                break
            await asyncio.sleep(RETRY_PAUSE)
        if len(statuses) > 1:
            load.retried.append((key, statuses))
        await asyncio.sleep(DRAFT_PACE)


async def product_reader(http: httpx.AsyncClient, index: int, window: Window, load: Load) -> None:
    """Read products, one in three with `Cache-Control: no-cache` (a forced revalidation)."""
    number = index
    while window.open():
        number += 1
        path = f"/api/v1/products/{number % PRODUCTS + 1}/"
        headers = {"Cache-Control": "no-cache"} if number % 3 == 0 else {}
        load.answers.append(await send(http, "read", path, "GET", path, headers=headers))
        await asyncio.sleep(PACE)


def failures(answers: list[Answer], ok: int) -> list[Answer]:
    return [answer for answer in answers if answer.status != ok]


def json_503(answer: Answer) -> bool:
    return answer.status == 503 and answer.body == REDIS_DOWN


def claim_lapsing(answer: Answer) -> bool:
    """A retry's 409 while the claim of an attempt that failed at the kill lapses: that attempt
    could not give its key back (IDEMPOTENCY_LOCK_TTL), and cannot complete it either."""
    code = answer.body.get("code") if isinstance(answer.body, dict) else None
    return answer.after_failure and (answer.status, code) == (409, "idempotency_in_flight")


def in_flight_at(answer: Answer, moment: float) -> bool:
    return answer.started <= moment <= answer.ended


def drafts_on_each_instance(
    redis_cluster: RedisClusterUnderTest, auth: dict[str, str]
) -> list[tuple[int, set[str]]]:
    """The status and draft ids of the user's draft list, read through each instance directly."""
    found = []
    for url in redis_cluster.instance_urls():
        with httpx.Client(base_url=url, timeout=30) as http:
            listed = http.get("/api/v1/drafts/", headers=auth)
        ids = {draft["id"] for draft in listed.json()} if listed.status_code == 200 else set()
        found.append((listed.status_code, ids))
    return found


# --- 1. a primary killed mid-load -----------------------------------------------------------------


def test_a_primary_killed_mid_load_answers_503_never_500_and_loses_no_acknowledged_draft(
    redis_cluster: RedisClusterUnderTest,
):
    topology = redis_cluster.topology
    # Given: users whose drafts live on each of the three primaries.
    auths = {user: redis_cluster.token(user) for user in LOAD_USERS}
    slots = {
        user: slot_of(app_key(session_keys.drafts, redis_cluster.user_id(auths[user])))
        for user in LOAD_USERS
    }
    owners = {user: topology.slot_owner(slot) for user, slot in slots.items()}
    victim = LOAD_USERS[0]
    victim_slot, victim_port = slots[victim], owners[victim]
    hit = [user for user in LOAD_USERS if owners[user] == victim_port]
    spared = [user for user in LOAD_USERS if owners[user] != victim_port]
    assert len(set(owners.values())) == 3, owners
    log_offset = redis_cluster.access_log_size()
    load = Load(acknowledged={user: {} for user in LOAD_USERS})
    failover: dict[str, float] = {}
    probe: list[Answer] = []

    async def kill_a_primary_and_restart_it(http: httpx.AsyncClient) -> None:
        await asyncio.sleep(KILL_AFTER)
        port = await asyncio.to_thread(topology.kill_primary_of_slot, victim_slot)
        failover["killed_at"] = topology.killed_at[port]
        new_port, seconds = await asyncio.to_thread(
            topology.wait_for_slot_owner_change, victim_slot, port, 10.0
        )
        failover.update(new_port=new_port, seconds=seconds)
        promoted_at = time.monotonic()
        # While the promoted node has no replica: one create for its slot, then its retry with
        # the same Idempotency-Key (what every client does after a 503).
        key = f"probe-{uuid.uuid4()}"
        for _ in range(2):
            answer = await send(
                http, "write", victim, "POST", "/api/v1/drafts/", json={"title": "probe"},
                headers={**auths[victim], "Idempotency-Key": key},
            )  # fmt: skip
            answer.key = key
            load.answers.append(answer)
            probe.append(answer)
            if answer.status == 201:
                load.acknowledged[victim][answer.body["id"]] = answer.body
        # A supervisor starts the killed node again; it rejoins as the promoted one's replica.
        await asyncio.sleep(max(0.0, promoted_at + RESTART_AFTER_FAILOVER - time.monotonic()))
        await asyncio.to_thread(redis_cluster.restart_node, port)
        failover["restarted_at"] = time.monotonic()
        await asyncio.to_thread(
            redis_topology.poll,
            lambda: redis_topology.replicas_online(new_port, 1, None) or None,
            timeout=20,
            what=f"a replica of 127.0.0.1:{new_port} in sync",
        )
        failover["replica_at"] = time.monotonic()

    async def scenario() -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=redis_cluster.base_url, timeout=30, limits=limits
        ) as http:
            window = Window(time.monotonic() + LOAD_SECONDS)
            await asyncio.gather(
                kill_a_primary_and_restart_it(http),
                *(
                    draft_writer(http, user, auths[user], window, load, CLAIM_RETRIED_FOR)
                    for user in LOAD_USERS
                ),
                *(product_reader(http, index, window, load) for index in range(3)),
            )

    try:
        # When: the primary of the first user's drafts is SIGKILLed 3 s into 15 s of load.
        asyncio.run(scenario())
        read_back = {
            user: drafts_on_each_instance(redis_cluster, auths[user]) for user in LOAD_USERS
        }
    finally:
        if victim_port not in topology.live_ports():
            redis_cluster.restart_node(victim_port)
        whole = redis_cluster.wait_until_whole()
    killed_at, restarted_at = failover["killed_at"], failover["restarted_at"]
    replica_at = failover["replica_at"]
    writes, reads = load.of("write"), load.of("read")
    hit_after_kill = [a for a in writes if a.who in hit and a.started >= killed_at]
    fresh = [a for a in hit_after_kill if a.status == 201 and not a.replayed]
    back_in = min(a.ended for a in fresh) - killed_at if fresh else None
    # Acknowledged before the killed node was even started again, for a key first sent after the
    # kill: no replica of the slot existed, so REDIS_WAIT_REPLICAS=1 should have refused them all.
    first_sent = {}
    for answer in writes:
        first_sent.setdefault(answer.key, answer.started)
    unreplicated = [
        a
        for a in hit_after_kill
        if a.status == 201 and a.ended < restarted_at and first_sent[a.key] >= killed_at
    ]
    failed = failures(writes, 201) + failures(reads, 200)
    acknowledged = sum(len(drafts) for drafts in load.acknowledged.values())
    lost = {
        user: [(status, sorted(set(drafts) - ids)) for status, ids in read_back[user]]
        for user, drafts in load.acknowledged.items()
        if any(set(drafts) - ids for _, ids in read_back[user])
    }
    upstream = redis_cluster.instance_statuses(log_offset)
    report(
        f"primary killed: slot {victim_slot} of 127.0.0.1:{victim_port} (users {hit}, spared "
        f"{spared}) served by 127.0.0.1:{failover['new_port']} {failover['seconds']:.2f}s after "
        f"SIGKILL; node restarted at +{failover['restarted_at'] - killed_at:.2f}s, a replica in "
        f"sync at +{replica_at - killed_at:.2f}s; cluster whole again {whole:.2f}s after the load"
    )
    report(
        f"primary killed: {len(writes)} draft creates ({acknowledged} acknowledged), {len(reads)} "
        f"product reads in {LOAD_SECONDS:.0f}s; first fresh 201 for the slot "
        + (f"+{back_in:.2f}s after the kill" if back_in is not None else "never")
        + f"; 201s for it before the node was restarted: {len(unreplicated)}, "
        f"{sum(a.replayed for a in unreplicated)} of them Idempotent-Replayed; the probe's "
        f"create and retry {[(a.status, a.replayed, round(a.seconds, 2)) for a in probe]}"
    )
    report(
        f"primary killed: failed writes {status_counts(failures(writes, 201))} "
        f"({len([a for a in failures(writes, 201) if a.who in spared])} of spared users), "
        f"failed reads {status_counts(failures(reads, 200))}; instances answered nginx "
        f"{status_counts_of(upstream)}"
    )
    for kind, answers in [
        ("writes of the slot", [a for a in writes if a.who in hit]),
        ("writes of other slots", [a for a in writes if a.who in spared]),
        ("reads", reads),
    ]:
        report(f"primary killed: {kind} {latencies(answers)}")
    slowest = max(load.answers, key=lambda a: a.seconds)
    report(
        f"primary killed: slowest {slowest.kind} {slowest.who} {slowest.status} "
        f"{slowest.seconds:.2f}s, from +{slowest.started - killed_at:.2f}s; bound "
        f"{SLOWEST_REQUEST:.1f}s; keys retried {len(load.retried)}, e.g. {load.retried[:2]}"
    )

    # Then: the slot's writes are acknowledged again within 10 s, on its promoted replica.
    assert back_in is not None and back_in < WRITES_BACK_WITHIN, (back_in, failover)
    # Every failure was a JSON 503, or nginx's 502/504 for a request in flight at the kill.
    unexpected = [
        (a.kind, a.who, a.status, a.body)
        for a in failed
        if not (
            json_503(a)
            or (a.status in (502, 504) and in_flight_at(a, killed_at))
            or claim_lapsing(a)
        )
    ]
    assert unexpected == []
    assert [line for line in upstream if line[1] >= 500 and line[1] != 503] == []
    assert load.abandoned == []
    # No draft acknowledged before a replica held it (REDIS_WAIT_REPLICAS=1), none lost: each one
    # is listed by both instances.
    assert lost == {}
    assert all(status == 200 for answers in read_back.values() for status, _ in answers)
    assert [(a.who, a.key, a.replayed) for a in unreplicated] == []
    # No request waited longer than its own Redis calls may take.
    assert slowest.seconds < SLOWEST_REQUEST, (slowest.kind, slowest.who, slowest.status)


def status_counts(answers: list[Answer]) -> dict[int, int]:
    return dict(sorted(Counter(answer.status for answer in answers).items()))


def status_counts_of(lines: list[tuple[str, int]]) -> dict[int, int]:
    return dict(sorted(Counter(status for _, status in lines).items()))


def latencies(answers: list[Answer]) -> str:
    seconds = sorted(answer.seconds for answer in answers)
    if not seconds:
        return "none"
    p50, p99 = (seconds[min(len(seconds) - 1, int(len(seconds) * q))] for q in (0.5, 0.99))
    return f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms"


# --- 2. a slot migrated under traffic ------------------------------------------------------------


class SlotMigration:
    """Move one slot from its primary to another, key by key, as redis-cli --cluster reshard."""

    def __init__(self, slot: int, source: int, target: int, primaries: list[int]) -> None:
        self.slot, self.source_port, self.target_port = slot, source, target
        self.primaries = primaries
        self.nodes = {
            port: redis.Redis(HOST, port, decode_responses=True, socket_timeout=5)
            for port in primaries
        }
        self.ids = {port: node.execute_command("CLUSTER MYID") for port, node in self.nodes.items()}
        self.source, self.target = self.nodes[source], self.nodes[target]
        self.moved = 0

    def begin(self) -> int:
        """Mark the slot importing on the target, migrating on the source; return its keys."""
        slot = self.slot
        self.target.execute_command(
            "CLUSTER SETSLOT", slot, "IMPORTING", self.ids[self.source_port]
        )
        self.source.execute_command(
            "CLUSTER SETSLOT", slot, "MIGRATING", self.ids[self.target_port]
        )
        return self.remaining()

    def remaining(self) -> int:
        return int(self.source.execute_command("CLUSTER COUNTKEYSINSLOT", self.slot))

    def move_some(self, count: int) -> int:
        """MIGRATE up to `count` of the slot's keys still on the source; return how many."""
        found = self.source.execute_command("CLUSTER GETKEYSINSLOT", self.slot, count)
        if found:
            # The target's address, as the cluster knows it; no password; a 5 s timeout.
            self.source.execute_command(
                "MIGRATE", HOST, self.target_port, "", 0, 5000, "KEYS", *found
            )
            self.moved += len(found)
        return len(found)

    def finish(self) -> None:
        """Give the slot to the target on every primary: the target first, then the source."""
        others = [
            port for port in self.primaries if port not in (self.source_port, self.target_port)
        ]
        for port in [self.target_port, self.source_port, *others]:
            self.nodes[port].execute_command(
                "CLUSTER SETSLOT", self.slot, "NODE", self.ids[self.target_port]
            )

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


def product_version(answer: Answer) -> int | None:
    return answer.body.get("version") if answer.status == 200 else None


async def read_products(
    clients: list[httpx.AsyncClient], paths: list[str], window: Window, load: Load, kind: str
) -> None:
    """Read every path through every client at once, again and again while `window` is open."""

    async def through(http: httpx.AsyncClient) -> None:
        while window.open():
            for path in paths:
                load.answers.append(await send(http, kind, path, "GET", path))
            await asyncio.sleep(PACE)

    await asyncio.gather(*(through(http) for http in clients))


async def draft_reader(
    http: httpx.AsyncClient, auth: dict, draft_path: str, window: Window, load: Load
) -> None:
    while window.open():
        for path in ("/api/v1/drafts/", draft_path):
            load.answers.append(await send(http, "draft read", path, "GET", path, headers=auth))
        await asyncio.sleep(PACE)


def put_body(product: dict, stock: int) -> dict:
    fields = ("sku", "slug", "name", "description", "price", "currency", "category")
    return {**{name: product[name] for name in fields}, "stock": stock}


def stale_reads(load: Load, kind: str, updates: list[Answer]) -> list[tuple[str, float, int, int]]:
    """The reads that began after an update's 200 and showed an older version than it made."""
    stale = []
    for answer in load.of(kind):
        done = [u for u in updates if u.status == 200 and u.ended <= answer.started]
        version = product_version(answer)
        if done and version is not None and version < done[-1].body["version"]:
            stale.append((answer.who, answer.started - done[-1].ended, version, len(done)))
    return stale


def test_a_slot_migrated_under_traffic_loses_no_write_and_serves_no_stale_product(
    redis_cluster: RedisClusterUnderTest,
):
    topology = redis_cluster.topology
    # Given: a user whose drafts and a product whose app-cache keys share slot S (both hash tags
    # are the same id), and a URL of that product whose response-cache keys are in S too.
    auth, admin = redis_cluster.token(MOVER), redis_cluster.token("admin")
    user_id = redis_cluster.user_id(auth)
    product_id = int(user_id)
    slot = slot_of(app_key(session_keys.drafts, user_id))
    in_slot = next(
        f"/api/v1/products/{product_id}/?in-slot={n}"
        for n in range(1_000_000)
        if slot_of(app_key(gateway_keys.cache_base, f"/api/v1/products/{product_id}/?in-slot={n}"))
        == slot
    )
    paths = [f"/api/v1/products/{product_id}/", in_slot]
    assert product_id <= PRODUCTS
    assert slot_of(app_key(catalog_keys.product_entry, product_id)) == slot
    source = topology.slot_owner(slot)
    primaries = redis_cluster.primaries()
    target = next(port for port in primaries if port != source)
    load, updates = Load(), []
    kept: dict[str, dict] = {}
    with httpx.Client(base_url=redis_cluster.base_url, timeout=30) as http:
        for number in range(5):
            created = http.post(
                "/api/v1/drafts/", json={"title": f"before {number}"},
                headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            kept[created.json()["id"]] = created.json()
        warm = [http.get(path) for path in paths for _ in range(2)]
    draft_path = f"/api/v1/drafts/{next(iter(kept))}/"
    migration = SlotMigration(slot, source, target, primaries)
    figures: dict[str, Any] = {}
    log_offset = redis_cluster.access_log_size()

    async def update(http: httpx.AsyncClient, when: str) -> None:
        current = await http.get(paths[0])
        etag, product = current.headers["etag"], current.json()
        body = put_body(product, product["stock"] + 1)
        figures[f"{when}: read before"] = etag
        answer = await send(
            http, "update", when, "PUT", paths[0], json=body, headers={**admin, "If-Match": etag}
        )
        if answer.status == 412:  # what was read is not the current version: take the 412's
            figures[f"{when}: 412 says"] = answer.headers["etag"]
            updates.append(answer)
            answer = await send(
                http, "update", when, "PUT", paths[0], json=body,
                headers={**admin, "If-Match": answer.headers["etag"]},
            )  # fmt: skip
        updates.append(answer)

    async def migrate(http: httpx.AsyncClient, window: Window) -> None:
        await asyncio.sleep(1.0)  # the load first
        started = figures["began_at"] = time.monotonic()
        figures["keys"] = await asyncio.to_thread(migration.begin)
        during = None
        while await asyncio.to_thread(migration.move_some, 1):
            if migration.moved == figures["keys"] // 2 and during is None:
                # Half the slot's keys on each side. Not awaited here: Redis refuses a script
                # over keys split between two nodes (TRYAGAIN) until the move goes on, so the
                # write can finish only once the migration does, as any migration tool keeps on.
                during = asyncio.create_task(update(http, "during"))
            await asyncio.sleep(0.1)  # the traffic meets the slot half moved: ASK
        await asyncio.to_thread(migration.finish)
        figures["finished_at"] = time.monotonic()
        figures["seconds"] = figures["finished_at"] - started
        if during is not None:
            await during
        await update(http, "after")  # then MOVED
        window.close_in(1.5)

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(base_url=redis_cluster.base_url, timeout=30) as http,
            httpx.AsyncClient(base_url=redis_cluster.instance_urls()[0], timeout=30) as one,
            httpx.AsyncClient(base_url=redis_cluster.instance_urls()[1], timeout=30) as two,
        ):
            window = Window()
            await asyncio.gather(
                migrate(http, window),
                draft_writer(http, MOVER, auth, window, load, 3.0),
                draft_reader(http, auth, draft_path, window, load),
                read_products([http, one, two], paths, window, load, "read"),
            )

    try:
        # When: S moves to another primary, key by key, while all of it is read and written.
        asyncio.run(scenario())
    finally:
        migration.close()
    read_back = drafts_on_each_instance(redis_cluster, auth)
    owner = topology.slot_owner(slot)
    upstream = redis_cluster.instance_statuses(log_offset)
    acknowledged = {**kept, **load.acknowledged[MOVER]}
    reads, writes, draft_reads = load.of("read"), load.of("write"), load.of("draft read")
    stale = stale_reads(load, "read", updates)
    in_slot_cache = {
        phase: dict(
            Counter(a.headers.get("x-cache") for a in reads if a.who == in_slot and test(a))
        )
        for phase, test in [
            ("before", lambda a: a.ended < figures["began_at"]),
            ("during", lambda a: figures["began_at"] <= a.started < figures["finished_at"]),
            ("after", lambda a: a.started >= figures["finished_at"]),
        ]
    }
    report(
        f"slot migrated: slot {slot} (drafts of user {user_id}, product {product_id}, {in_slot}) "
        f"127.0.0.1:{source} -> 127.0.0.1:{target}, {migration.moved} keys in "
        f"{figures['seconds']:.2f}s, {figures['keys']} at the start"
    )
    report(
        f"slot migrated: {len(writes)} draft creates ({len(load.acknowledged[MOVER])} "
        f"acknowledged), {len(draft_reads)} draft reads, {len(reads)} product reads; statuses: "
        f"writes {status_counts(writes)}, draft reads {status_counts(draft_reads)}, product "
        f"reads {status_counts(reads)}; updates (who, status, s) "
        f"{[(u.who, u.status, round(u.seconds, 2)) for u in updates]}"
    )
    report(
        f"slot migrated: X-Cache of {in_slot} {in_slot_cache}; instances answered nginx "
        f"{status_counts_of(upstream)}; stale reads "
        f"{len(stale)}; keys retried {load.retried[:3]}; abandoned {load.abandoned[:3]}; "
        f"{ {k: v for k, v in figures.items() if ':' in k} }"
    )

    # Then: no 500, and 503 the only failure (counted above).
    assert [line for line in upstream if line[1] >= 500 and line[1] != 503] == []
    assert [(u.who, u.status) for u in updates] == [("during", 200), ("after", 200)]
    assert {a.status for a in writes} <= {201, 503}
    assert {a.status for a in [*reads, *draft_reads]} <= {200, 503}
    assert [a for a in load.answers if a.status == 503 and not json_503(a)] == []
    assert [w.status_code for w in warm] == [200] * 4
    assert load.abandoned == []
    # The slot moved, whole; every acknowledged draft is there, through both instances.
    assert (owner, migration.remaining()) == (target, 0)
    assert [(status, set(acknowledged) - ids) for status, ids in read_back] == [(200, set())] * 2
    # Once an update's 200 came back, no read through either instance showed the older version;
    # the gateway finds the slot's entries on their new node.
    assert stale == []
    assert in_slot_cache["after"].get("HIT", 0) > 0


# --- 3. a purge by tag on the Cluster ------------------------------------------------------------


def test_a_purge_by_tag_reaches_entries_in_every_slot_and_no_instance_serves_them_stale(
    redis_cluster: RedisClusterUnderTest,
):
    admin = redis_cluster.token("admin")
    products = [f"/api/v1/products/{n}/" for n in range(1, PRODUCTS + 1)]
    lists = [
        f"/api/v1/products/?page={page}&page_size={size}"
        for size in (5, 10, 15)
        for page in range(1, PRODUCTS // size + 1)
    ]
    paths = [*products, *lists]
    # Given: every product and list page in the gateway's cache (a HIT through both instances),
    # the entries of the lists (tag "products") on every primary.
    with httpx.Client(base_url=redis_cluster.instance_urls()[0], timeout=30) as http:
        stored = [http.get(path) for path in paths]
    cached = []
    for url in redis_cluster.instance_urls():
        with httpx.Client(base_url=url, timeout=30) as http:
            cached.append([http.get(path).headers.get("x-cache") for path in paths])
    cluster = redis_cluster.topology.client(decode_responses=True, socket_timeout=5)
    try:
        tags = ["products", *(f"product:{n}" for n in range(1, PRODUCTS + 1))]
        entries = {tag: cluster.smembers(app_key(gateway_keys.cache_tag, tag)) for tag in tags}
        node_of = {
            key: cluster.get_node_from_key(key).port
            for key in [*(app_key(gateway_keys.cache_tag, tag) for tag in tags), *set().union(
                *entries.values()
            )]
        }  # fmt: skip
        # A product whose entry is on another node than its tag's set: no one script reaches both.
        target = next(
            n
            for n in range(1, 6)
            if {node_of[key] for key in entries[f"product:{n}"]}
            != {node_of[app_key(gateway_keys.cache_tag, f"product:{n}")]}
        )
        purged = entries["products"] | entries[f"product:{target}"]
        kept = set().union(*entries.values()) - purged
        present = [cluster.exists(key) for key in purged | kept]
        path = f"/api/v1/products/{target}/"
        before = {p: r.headers["etag"] for p, r in zip(paths, stored, strict=True)}
        with httpx.Client(base_url=redis_cluster.base_url, timeout=30) as http:
            current = http.get(path)
            # When: a staff user changes a product that the first list pages show.
            updated = http.put(
                path,
                json=put_body(current.json(), current.json()["stock"] + 5),
                headers={**admin, "If-Match": current.headers["etag"]},
            )
        update_done = time.monotonic()
        left = {key for key in purged if cluster.exists(key)}
        still = {key for key in kept if cluster.exists(key)}
    finally:
        cluster.close()
    outcome: list[Answer] = []

    async def read_back() -> None:
        async with (
            httpx.AsyncClient(base_url=redis_cluster.base_url, timeout=30) as http,
            httpx.AsyncClient(base_url=redis_cluster.instance_urls()[0], timeout=30) as one,
            httpx.AsyncClient(base_url=redis_cluster.instance_urls()[1], timeout=30) as two,
        ):
            load = Load()
            window = Window(time.monotonic() + 1.0)
            await read_products([http, one, two], [path, *lists], window, load, "read")
            outcome.extend(load.answers)

    # Then, at once through both instances and nginx, for a second:
    asyncio.run(read_back())
    stale = [
        (a.who, a.headers.get("x-cache"), a.headers.get("etag"))
        for a in outcome
        if a.status != 200 or a.headers.get("etag") == before[a.who]
    ]
    shown = {
        item["stock"]
        for a in outcome
        if a.who in lists
        for item in a.body["results"]
        if item["id"] == target
    }
    report(
        f"purge by tag: {len(purged | kept)} entries cached ({sum(present)} present) on "
        f"{len({node_of[key] for key in purged | kept})} primaries; product {target} updated: "
        f"its tags' {len(purged)} entries on {len({node_of[key] for key in purged})} primaries, "
        f"{len(left)} left after the 200, {len(still)} of {len(kept)} others kept; "
        f"{len(outcome)} reads in the second after: X-Cache "
        f"{dict(Counter(a.headers.get('x-cache') for a in outcome))}, stale {len(stale)}"
    )

    assert [r.status_code for r in stored] == [200] * len(paths)
    assert cached == [["HIT"] * len(paths)] * 2
    assert all(present) and len({node_of[key] for key in purged}) == 3
    assert updated.status_code == 200
    # The purge dropped every entry of the product's and the lists' tags, whatever their node,
    # and no other entry.
    assert (left, still) == (set(), kept)
    # Every read after the 200 is the new version: a MISS, or a HIT of what the MISS stored.
    assert all(a.started >= update_done for a in outcome)
    assert stale == []
    assert {a.headers["etag"] for a in outcome if a.who == path} == {updated.headers["etag"]}
    assert shown == {current.json()["stock"] + 5}
