"""Helpers shared by the tests: free ports, server processes, database URLs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from config.redis_wiring import parse

BASE_DIR = Path(__file__).resolve().parents[1]
# Debian's browser, never a downloaded one; quiet flags, since this machine's network is closed.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BIN_DIR = Path(sys.executable).parent


@asynccontextmanager
async def uvicorn_serving(app: Any, **options: Any) -> AsyncIterator[tuple[str, int]]:
    """Serve the ASGI `app` under uvicorn in this event loop, with `options` (uvicorn.Config's);
    yield its (host, port)."""
    import uvicorn

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", **options)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            assert not serving.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.01)
        yield listening.getsockname()
    finally:
        server.should_exit = True
        await serving
        listening.close()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds, failing the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def http_status(url: str) -> int | None:
    """Return the status of a GET to `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def database_url(settings_dict: dict) -> str:
    """Return the DATABASE_URL that names the database `settings_dict` points at."""
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{settings_dict['NAME']}"
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    """Return this process's environment with `overrides`, for a server the test starts."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **overrides}


def start_daphne(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start daphne serving config.asgi:application on 127.0.0.1:`port`, logging to `log_path`."""
    with log_path.open("wb") as log:
        argv = [str(BIN_DIR / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
        argv += ["--access-log", os.devnull, "config.asgi:application"]
        return subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    """Stop a process the test started, forcefully if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def next_ticks(socket, count: int, *, after: int) -> list[dict]:
    """Read quote messages until `count` ticks after seq `after` arrived; return those ticks."""
    ticks: list[dict] = []
    while len(ticks) < count:
        message = json.loads(await socket.recv())
        if message["type"] == "tick" and message["seq"] > after:
            ticks.append(message)
    return ticks


def point_stores_at(settings: Any, redis_url: str) -> None:
    """Give the stores (the gateway's, the apps') another Redis, for this test only."""
    settings.REDIS = {**settings.REDIS, "stores": parse("REDIS_URL", redis_url)}
