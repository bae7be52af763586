"""/healthz answers without I/O; /readyz checks the database and Redis and never hangs."""

import socket
import time
from collections.abc import Iterator

import pytest

from tests import support


@pytest.mark.django_db
def test_healthz_answers_without_touching_the_database(asgi, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = asgi.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response.headers["cache-control"]


@pytest.mark.django_db
def test_readyz_reports_each_check_when_all_is_up(asgi, settings):
    response = asgi.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True}
    # Which Redis was checked, and in what role: the stores' server, answering as a primary.
    assert body["checks"]["redis"] == {
        "ok": True,
        "redis": settings.REDIS["stores"].describe(),
        "role": "master",
        "address": settings.REDIS["stores"].describe(),
    }


@pytest.fixture
def silent_redis_url() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung Redis."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.fixture
def refusing_redis_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # closed again: connections are refused


@pytest.mark.django_db
def test_readyz_gives_503_within_two_seconds_when_redis_hangs(asgi, settings, silent_redis_url):
    support.point_stores_at(settings, silent_redis_url)
    started = time.monotonic()

    response = asgi.get("/readyz", timeout=10)

    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["detail"] == "Not ready: redis unavailable."
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"]["ok"] is False
    # The promise is a deadline, not a speed: the answer must come, and come in time.
    assert elapsed < 2.0


@pytest.mark.django_db
def test_readyz_names_redis_when_it_refuses_connections(asgi, settings, refusing_redis_url):
    support.point_stores_at(settings, refusing_redis_url)

    response = asgi.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert "refused" in response.json()["checks"]["redis"]["error"].lower()
