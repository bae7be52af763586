"""The gateway's settings: `settings.GATEWAY` over these defaults; rates also from the env."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

from config import env

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(sec|second|min|minute|hour)\s*$")
_PERIOD_SECONDS = {"sec": 1, "second": 1, "min": 60, "minute": 60, "hour": 3600}


@dataclass(frozen=True)
class Rate:
    """A throttle policy's rate: `limit` requests per `period` seconds."""

    limit: int
    period: int

    @classmethod
    def parse(cls, name: str, text: str) -> Rate:
        match = _RATE.match(text)
        if not match or int(match.group(1)) < 1:
            env.fail(name, f"must look like <count>/<sec|min|hour> with count >= 1, got {text!r}")
        return cls(int(match.group(1)), _PERIOD_SECONDS[match.group(2)])


DEFAULT_RATES = {
    "anon": "120/min",  # per client IP, without a token
    "user": "600/min",  # per user id, with a valid token
    "auth": "10/min",  # per client IP, on AUTH_PATHS: password guessing
    "write": "60/min",  # per user or IP, on POST, PUT, PATCH, DELETE
    "connect": "30/min",  # per client IP: WebSocket connections and SSE streams
}

DEFAULTS = {
    # Paths with a strict per-IP policy: password guessing must not get 600 tries a minute.
    "AUTH_PATHS": ["/api/v1/auth/token/", "/api/v1/auth/register/"],
    # Long-lived streams count against the connection policy, like WebSockets.
    "STREAM_PATHS": ["/api/v1/quotes/stream/"],
    # Never throttled, cached or counted: probes and static files.
    "EXEMPT_PREFIXES": ["/healthz", "/readyz", "/static/", "/metrics"],
    # How many proxies in front of us append to X-Forwarded-For; 0 trusts the socket only.
    "TRUSTED_PROXY_HOPS": 0,
    # When Redis is down: "open" lets requests through (logged, counted), "closed" answers 503.
    "THROTTLE_ON_REDIS_ERROR": "open",
    # The shared response cache.
    "CACHE_MAX_ENTRY_BYTES": 1024 * 1024,
    "CACHE_MAX_TTL": 86400,
    "COLLAPSE_WAIT_SECONDS": 3.0,
    # Bytes of entries each process keeps in memory, exact by Redis's invalidations; 0: none.
    "LOCAL_CACHE_BYTES": 64 * 1024 * 1024,
    # A client's `Cache-Control: no-cache` forces at most one revalidation per entry this often.
    "CLIENT_REVALIDATE_INTERVAL": 1.0,
    # Purges are also sent to these edge caches (nginx, Varnish): PURGE <url><path>, BAN <url>.
    "EDGE_PURGE_URLS": [],
    # Seconds of per-second metrics kept for the dashboard.
    "METRICS_RETENTION_SECONDS": 900,
    # Seconds between each instance's metric flushes to Redis; 0 flushes after every request.
    "METRICS_FLUSH_SECONDS": 1.0,
}


def rates(configured: dict[str, str]) -> dict[str, Rate]:
    """Return each policy's rate: GATEWAY_RATE_<POLICY>, else GATEWAY["RATES"], else the default."""
    rates = {}
    for policy, text in {**DEFAULT_RATES, **configured}.items():
        variable = f"GATEWAY_RATE_{policy.upper()}"
        rates[policy] = Rate.parse(variable, env.string(variable, text))
    return rates


def from_env() -> dict[str, Any]:
    """Return the settings given in the environment (behind nginx, as `make cluster` runs)."""
    found: dict[str, Any] = {}
    if env.is_set("GATEWAY_EDGE_PURGE_URLS"):
        found["EDGE_PURGE_URLS"] = env.csv("GATEWAY_EDGE_PURGE_URLS", [])
    if env.is_set("GATEWAY_TRUSTED_PROXY_HOPS"):
        found["TRUSTED_PROXY_HOPS"] = env.integer("GATEWAY_TRUSTED_PROXY_HOPS", 0, minimum=0)
    return found


@cache
def _merged() -> dict[str, Any]:
    configured = getattr(settings, "GATEWAY", {})
    merged = {**DEFAULTS, **configured, **from_env(), "RATES": rates(configured.get("RATES", {}))}
    merged["EXEMPT_PREFIXES"] = tuple(merged["EXEMPT_PREFIXES"])  # for str.startswith, once
    return merged


def gateway_setting(name: str) -> Any:
    """Return one gateway setting."""
    return _merged()[name]


def reset(**kwargs: Any) -> None:
    """Forget the merged settings, so that a changed GATEWAY setting takes effect (tests)."""
    if kwargs.get("setting", "GATEWAY") == "GATEWAY":
        _merged.cache_clear()
