"""Fixtures for the gateway: a scripted origin behind the real layers, and the test Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest


@dataclass
class Origin:
    """A stand-in for Django behind the gateway: answers what the test scripts, counts its calls."""

    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"cache-control": "public, s-maxage=60"}
    )
    body: bytes = b"hello"
    delay: float = 0.0
    fail: bool = False
    calls: list[dict] = field(default_factory=list)

    async def __call__(self, scope, receive, send) -> None:
        self.calls.append({"method": scope["method"], "headers": dict(scope["headers"])})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the origin is down")
        headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture
def origin() -> Origin:
    return Origin()


@pytest.fixture(autouse=True)
def clean_redis(redis_client) -> Iterator[None]:
    """Every gateway test starts with an empty test Redis."""
    yield


def client_for(app) -> httpx.AsyncClient:
    """An HTTP client of an ASGI app, from 127.0.0.1."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
