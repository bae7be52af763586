"""Start daphne processes against the test database and Redis, as the system tests need."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from tests import support


@contextmanager
def daphne_servers(count: int, log_dir: Path, **environment: str) -> Iterator[list[str]]:
    """Run `count` daphne servers sharing the test DB and Redis; yield their base URLs."""
    from django.db import connection

    env = support.child_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=support.database_url(connection.settings_dict),
        REDIS_URL=os.environ.get("REDIS_URL", settings.REDIS_URL),
        **environment,
    )
    ports = [support.free_port() for _ in range(count)]
    logs = [log_dir / f"daphne-{port}.log" for port in ports]
    processes = [
        support.start_daphne(port, env, log) for port, log in zip(ports, logs, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for process, url, log in zip(processes, urls, logs, strict=True):
            support.wait_for(
                lambda p=process, u=url: (
                    p.poll() is not None or support.http_status(f"{u}/healthz") == 200
                ),
                timeout=30,
                what=f"daphne at {url}",
            )
            assert process.poll() is None, log.read_text()
        yield urls
    finally:
        for process in processes:
            support.stop(process)
