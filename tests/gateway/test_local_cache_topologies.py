"""The in-process response cache on a Sentinel-managed primary: emptied by a failover, exact after.

A primary, two replicas and three sentinels (scripts/redis_topology.py) on free loopback ports,
stopped by PID when the test ends. The gateway's Redis and the apps' (gateway.purge) are that
primary, as on an instance that `make cluster REDIS=sentinel` starts. On a Redis Cluster the same
promises are tested in test_redis_client_cluster.py, on that module's cluster.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis
from redis.exceptions import ConnectionError

from gateway import purge
from gateway.local_cache import LocalCache
from gateway.response_cache import ResponseCache
from tests import support
from tests.gateway.local_cache_support import (
    HOST,
    get,
    listening_cache,
    lookups_on,
    until,
    until_text,
)

sys.path.insert(0, str(support.BASE_DIR / "scripts"))

import dev  # scripts/dev.py: the Redis binary, and the processes it starts
import redis_topology

pytestmark = [pytest.mark.system, pytest.mark.asyncio]


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[redis_topology.SentinelTopology]:
    processes = dev.Processes()
    try:
        yield redis_topology.start_sentinel(processes, tmp_path / "sentinel")
    finally:
        processes.stop_all()


@pytest_asyncio.fixture
async def memory(sentinel, settings) -> AsyncIterator[LocalCache]:
    """This loop's in-process cache, its client on the sentinels' primary, once it listens."""
    async with listening_cache(settings, sentinel.url) as memory:
        yield memory


@pytest.fixture
def cache(origin) -> ResponseCache:
    return ResponseCache(origin)


def replicated(port: int, replicas: int) -> None:
    """Return once `replicas` replicas of `port` have every write the node took."""
    client = redis.Redis(HOST, port, socket_timeout=2, single_connection_client=True)
    try:
        # WAIT counts the replicas that have this connection's last write, and so all before it.
        client.set("replicated", 1)
        assert client.wait(replicas, 2000) == replicas
    finally:
        client.close()


async def reconnected(memory: LocalCache) -> int:
    """Send commands until the gateway's client reaches a primary again; return its port."""
    async with asyncio.timeout(5):
        while True:
            try:
                role = await memory.client.execute("ROLE")
                break
            except ConnectionError:  # the dead primary's connection, or a sentinel's old answer
                await asyncio.sleep(0.05)
    assert role[0] == b"master" and memory.client.protocol is not None
    return int(memory.client.protocol.transport.get_extra_info("peername")[1])


async def test_a_sentinel_failover_empties_memory_and_the_new_primary_s_changes_are_heard(
    sentinel, memory, cache, origin
):
    # Given an entry read once from the primary, then served from memory
    old = sentinel.primary_port()
    await get(cache, "/thing")  # MISS: stored on the primary
    await get(cache, "/thing")  # HIT from the primary: kept in memory
    before = lookups_on(old)
    assert (await get(cache, "/thing")).headers["x-cache"] == "HIT"
    assert lookups_on(old) == before  # from memory: no LOOKUP
    replicated(old, replicas=2)  # whichever replica is promoted has the entry

    # When the primary is SIGKILLed and the sentinels promote a replica
    assert await asyncio.to_thread(sentinel.kill_primary) == old
    await until(lambda: not memory.kept, "memory to be emptied")  # at the loss, at once
    new, _ = await asyncio.to_thread(sentinel.wait_for_new_primary, old, 15)
    before = lookups_on(new)

    # Then the gateway's client reaches the new primary, and the entry is read from it again
    assert await reconnected(memory) == new
    again = await get(cache, "/thing")
    assert (again.headers["x-cache"], again.text) == ("HIT", "hello")
    assert lookups_on(new) == before + 1
    # and, listening again, kept again: then a purge on the new primary is heard
    await until(lambda: memory.listening, "listening to the new primary")
    await get(cache, "/thing")  # from the new primary, kept
    kept = lookups_on(new)
    assert (await get(cache, "/thing")).headers["x-cache"] == "HIT"
    assert lookups_on(new) == kept  # from memory
    origin.body = b"after the purge"
    assert purge.urls(["/thing"]) == 1  # as another instance's Django, on the new primary
    after = await until_text(cache, "/thing", "after the purge")
    assert after.headers["x-cache"] == "MISS"
    assert len(origin.calls) == 2
