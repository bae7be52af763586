"""The gateway's pipelined Redis connection: a real Redis, and a server that never answers."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import pytest_asyncio
from django.conf import settings
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from gateway.redis_client import PipelinedRedis
from tests import support

sys.path.insert(0, str(support.BASE_DIR / "scripts"))
import dev  # scripts/dev.py: which Redis binary this machine has


@pytest_asyncio.fixture
async def client():
    client = PipelinedRedis(settings.REDIS_URL, timeout=2.0)
    yield client
    client.close()


@pytest.mark.asyncio
async def test_concurrent_commands_each_get_their_own_reply(client, redis_client):
    replies = await asyncio.gather(*(client.execute("ECHO", f"reply {n}") for n in range(500)))

    assert replies == [f"reply {n}".encode() for n in range(500)]
    # The writes went to the configured database, which the test's own client reads.
    await client.execute("SET", "pipelined:probe", 42)
    assert redis_client.get("pipelined:probe") == b"42"


@pytest.mark.asyncio
async def test_an_error_reply_raises_and_the_next_replies_stay_in_step(client):
    results = await asyncio.gather(
        client.execute("SET", "pipelined:n", "1"),
        client.execute("LPUSH", "pipelined:n", "x"),  # the wrong type: an error reply
        client.execute("INCR", "pipelined:n"),
        return_exceptions=True,
    )

    assert results[0] == b"OK"
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
    assert results[2] == 2


@pytest.mark.asyncio
async def test_a_dropped_connection_fails_what_waits_on_it_and_the_next_command_reconnects(client):
    own_id = await client.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(client.execute("BLPOP", "pipelined:never", 5))
    await asyncio.sleep(0.1)  # BLPOP is waiting in Redis

    killer = PipelinedRedis(settings.REDIS_URL, timeout=2.0)
    assert await killer.execute("CLIENT", "KILL", "ID", own_id) == 1  # killed one client
    killer.close()

    with pytest.raises(ConnectionError):
        await blocked
    assert await client.execute("PING") == b"PONG"
    assert await client.execute("CLIENT", "ID") != own_id


async def silent_server() -> tuple[asyncio.Server, int]:
    """A TCP server that accepts connections and reads, but never answers."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_a_server_that_never_answers_times_out_every_command_at_once():
    server, port = await silent_server()
    client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        first = asyncio.ensure_future(client.execute("PING"))
        await asyncio.sleep(0.1)
        results = await asyncio.gather(first, client.execute("PING"), return_exceptions=True)
        waited = loop.time() - started
    finally:
        client.close()
        server.close()

    assert [type(result) for result in results] == [TimeoutError, TimeoutError]
    # The later command failed with the first one, when the connection was dropped.
    assert waited < 0.3 + 0.25


@pytest.mark.asyncio
async def test_nothing_listening_is_a_connection_error():
    server, port = await silent_server()
    server.close()
    await server.wait_closed()
    client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=1.0)

    with pytest.raises(ConnectionError, match="Cannot connect"):
        await client.execute("PING")


@pytest.fixture
def redis_with_password(tmp_path):
    socket_path = tmp_path / "redis.sock"
    argv = [dev.redis_server_binary(), "--port", "0", "--unixsocket", str(socket_path),
            "--save", "", "--requirepass", "s3cret", "--dir", str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        support.wait_for(socket_path.exists, timeout=10, what="the password-protected Redis")
        yield socket_path
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.asyncio
async def test_a_password_and_a_database_from_the_url_are_used(redis_with_password):
    client = PipelinedRedis(f"unix://:s3cret@{redis_with_password}?db=3", timeout=2.0)
    wrong = PipelinedRedis(f"unix://:wrong@{redis_with_password}?db=3", timeout=2.0)
    try:
        await client.execute("SET", "k", "v")
        listed = await client.execute("CLIENT", "LIST", "ID", await client.execute("CLIENT", "ID"))
        with pytest.raises(ConnectionError, match="refused the connection's setup"):
            await wrong.execute("PING")
    finally:
        client.close()
        wrong.close()

    assert b" db=3 " in listed


@pytest.mark.asyncio
async def test_a_transaction_is_not_split_by_other_tasks_commands(client):
    await client.execute("SET", "pipelined:count", 0)

    async def increment_twice_in_a_transaction() -> list[object]:
        return await client.transaction([("INCR", "pipelined:count"), ("INCR", "pipelined:count")])

    async def read_between() -> object:
        return await client.execute("GET", "pipelined:count")

    results = await asyncio.gather(*[
        job() for _ in range(50) for job in (increment_twice_in_a_transaction, read_between)
    ])  # fmt: skip

    # Each transaction's two increments are adjacent, so no read ever sees an odd count.
    assert [r for r in results if isinstance(r, list)] == [
        [2 * n + 1, 2 * n + 2] for n in range(50)
    ]
    assert all(int(r) % 2 == 0 for r in results if not isinstance(r, list))


@pytest.mark.asyncio
async def test_an_error_inside_a_transaction_is_raised(client):
    await client.execute("SET", "pipelined:text", "x")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await client.transaction([("SADD", "pipelined:text", "a"), ("SET", "pipelined:ok", 1)])

    # MULTI/EXEC is not a rollback: the other command ran, as in Redis.
    assert await client.execute("GET", "pipelined:ok") == b"1"
