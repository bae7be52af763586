"""Fixtures for sessions_demo: users, their tokens, an empty test Redis, Redis that is down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model

from config.redis_wiring import app_client
from sessions_demo.tokens import token_pair_for
from tests import support

PASSWORD = "a-long-test-password"


@pytest.fixture(autouse=True)
def empty_redis(redis_client) -> Iterator[None]:
    """Each test starts with an empty test Redis (the redis_client fixture flushes it)."""
    yield


def make_user(username: str, *, is_staff: bool = False):
    return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=is_staff)


def bearer(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def alice_tokens(alice) -> dict[str, str]:
    return token_pair_for(alice)


@pytest.fixture
def as_alice(alice_tokens) -> dict[str, str]:
    """Headers that authenticate as alice."""
    return bearer(alice_tokens["access"])


@pytest.fixture
def as_bob(bob) -> dict[str, str]:
    return bearer(token_pair_for(bob)["access"])


@pytest.fixture
def redis_down(settings) -> Iterator[None]:
    """Point the apps' Redis client at a port where nothing listens."""
    support.point_stores_at(settings, f"redis://127.0.0.1:{support.free_port()}/0")
    app_client.cache_clear()
    yield
    app_client.cache_clear()
