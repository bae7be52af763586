"""Fixtures: the full ASGI application in-process, a live daphne server, and the test Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from tests import support

# The run ends with one line counting the tests skipped for a missing tool (tests/missing_tools.py).
pytest_plugins = ["tests.missing_tools"]


class AsgiClient:
    """Send requests through the whole ASGI application, gateway included, from a sync test.

    Django's test client would bypass the gateway. Running the async client under async_to_sync
    keeps Django's sync views on the test's own thread, so they see the test's transaction.
    """

    def __init__(self, client_address: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.client_address = client_address

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        from config.asgi import application

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=application, client=self.client_address)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1"
            ) as client:
                return await client.request(method, path, **kwargs)

        # As Django's test client does: closing "old" connections at the request's edges would
        # close the test's own connection, in the middle of its transaction.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            return async_to_sync(send)()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs) -> httpx.Response:
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def asgi() -> AsgiClient:
    return AsgiClient()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the test Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, tmp_path_factory) -> Iterator[str]:
    """Start daphne on a free port against the test database and Redis; yield its base URL."""
    from django.db import connection

    port = support.free_port()
    env = support.child_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=support.database_url(connection.settings_dict),
        REDIS_URL=os.environ.get("REDIS_URL", settings.REDIS_URL),
    )
    log_path = Path(tmp_path_factory.mktemp("daphne")) / "daphne.log"
    process = support.start_daphne(port, env, log_path)
    base_url = f"http://127.0.0.1:{port}"
    try:
        support.wait_for(
            lambda: process.poll() is not None or support.http_status(f"{base_url}/healthz") == 200,
            timeout=30,
            what="daphne to answer /healthz",
        )
        assert process.poll() is None, log_path.read_text()
        yield base_url
    finally:
        support.stop(process)
