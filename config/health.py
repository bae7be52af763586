"""Liveness and readiness probes for load balancers and orchestrators."""

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.errors import error_body
from config.redis_wiring import probe

# Checks run in their own threads so that one that hangs cannot hold the answer past the deadline.
_checks_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer that the process is alive, touching nothing else."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this pool thread must not keep a connection open between probes


def _check_redis() -> dict[str, Any]:
    # The stores' Redis: the one every request of the gateway needs. Which, and in what role.
    return probe(settings.REDIS["stores"], settings.READINESS_TIMEOUT)


READINESS_CHECKS = {"database": _check_database, "redis": _check_redis}


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database and Redis both respond in time, else 503 naming what is down."""
    started = time.monotonic()
    futures = {name: _checks_pool.submit(check) for name, check in READINESS_CHECKS.items()}
    wait(futures.values(), timeout=settings.READINESS_TIMEOUT)
    checks = {}
    for name, future in futures.items():
        if not future.done():
            checks[name] = {"ok": False, "error": "timed out"}
        elif future.exception() is not None:
            checks[name] = {
                "ok": False,
                "error": str(future.exception()) or type(future.exception()).__name__,
            }
        else:
            checks[name] = {"ok": True, **(future.result() or {})}
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    down = [name for name, result in checks.items() if not result["ok"]]
    if down:
        body = error_body(f"Not ready: {', '.join(down)} unavailable.", "not_ready", checks=checks)
        return JsonResponse({**body, "elapsed_ms": elapsed_ms}, status=503)
    return JsonResponse({"status": "ready", "checks": checks, "elapsed_ms": elapsed_ms})
