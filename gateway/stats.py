"""Read the gateway's cluster-wide metrics: JSON for the dashboard, text for Prometheus."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, cast

from config.redis_wiring import app_client
from gateway import keys
from gateway.metrics import BUCKETS, CACHE_OUTCOMES

SERIES_SECONDS = 60


def _buckets_in_order() -> list[str]:
    return [f"{le:g}" for le in BUCKETS]


def percentile(counts: dict[str, int], fraction: float) -> float | None:
    """Return the latency (ms) under which `fraction` of the requests fell, from the histogram."""
    total = sum(counts.values())
    if total == 0:
        return None
    seen = 0
    for le in _buckets_in_order():
        seen += counts.get(le, 0)
        if seen >= fraction * total:
            return float(le) * 1000 if le != "inf" else None
    return None


def totals() -> dict[str, Any]:
    """Return every route's counters since the metrics began, grouped by kind."""
    # The apps' client decodes replies (decode_responses=True): fields and values are str.
    raw = cast(dict[str, str], app_client().hgetall(keys.metrics_totals()))
    routes: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "requests": {},
            "duration_buckets": {},
            "duration_sum": 0.0,
            "cache": {},
            "throttled": {},
        }
    )
    other: dict[str, int] = {}
    for field, value in raw.items():
        kind, _, rest = field.partition("|")
        route, _, label = rest.partition("|")
        if kind == "requests":
            routes[route]["requests"][label] = int(value)
        elif kind == "duration_bucket":
            routes[route]["duration_buckets"][label] = int(value)
        elif kind == "duration_sum":
            routes[route]["duration_sum"] = float(value)
        elif kind in ("cache", "throttled"):
            routes[route][kind][label] = int(value)
        else:
            other[kind] = int(value)
    return {"routes": dict(routes), **other}


def series(seconds: int = SERIES_SECONDS, now: float | None = None) -> list[dict[str, Any]]:
    """Return the last `seconds` seconds, one point each, for live charts."""
    last = int(now if now is not None else time.time()) - 1  # the current second is still filling
    pipeline = app_client().pipeline(transaction=False)
    for second in range(last - seconds + 1, last + 1):
        pipeline.hgetall(keys.metrics_second(second))
    points = []
    for offset, counts in enumerate(pipeline.execute()):
        numbers = {field: int(value) for field, value in counts.items()}
        buckets = {
            f.removeprefix("bucket:"): n for f, n in numbers.items() if f.startswith("bucket:")
        }
        cache = {outcome: numbers.get(f"cache:{outcome}", 0) for outcome in CACHE_OUTCOMES}
        looked_up = sum(cache.values())
        points.append(
            {
                "t": last - seconds + 1 + offset,
                "requests": numbers.get("requests", 0),
                "errors": numbers.get("status:5xx", 0),
                "throttled": numbers.get("throttled", 0),
                "cache": cache,
                "hit_ratio": (cache["HIT"] + cache["STALE"]) / looked_up if looked_up else None,
                "p50_ms": percentile(buckets, 0.50),
                "p95_ms": percentile(buckets, 0.95),
                "p99_ms": percentile(buckets, 0.99),
            }
        )
    return points


def prometheus_text() -> str:
    """Render the totals in the Prometheus text exposition format (0.0.4)."""
    data = totals()
    routes = sorted(data["routes"].items())
    lines = _family("gateway_requests_total", "counter", "Requests answered, by route and status.")
    for route, counts in routes:
        for status_class, value in sorted(counts["requests"].items()):
            lines.append(_sample("gateway_requests_total", value, route=route, status=status_class))
    lines += _family(
        "gateway_request_duration_seconds", "histogram", "Time to the end of the response."
    )
    for route, counts in routes:
        cumulative = 0
        for le in _buckets_in_order():
            cumulative += counts["duration_buckets"].get(le, 0)
            bound = "+Inf" if le == "inf" else le
            lines.append(
                _sample(
                    "gateway_request_duration_seconds_bucket", cumulative, route=route, le=bound
                )
            )
        lines.append(
            _sample("gateway_request_duration_seconds_sum", counts["duration_sum"], route=route)
        )
        lines.append(_sample("gateway_request_duration_seconds_count", cumulative, route=route))
    lines += _family("gateway_cache_total", "counter", "Shared-cache outcomes, by route.")
    for route, counts in routes:
        for outcome, value in sorted(counts["cache"].items()):
            lines.append(_sample("gateway_cache_total", value, route=route, outcome=outcome))
    lines += _family("gateway_throttled_total", "counter", "Requests refused with 429.")
    for route, counts in routes:
        for policy, value in sorted(counts["throttled"].items()):
            lines.append(_sample("gateway_throttled_total", value, route=route, policy=policy))
    lines += _family(
        "gateway_throttle_redis_errors_total", "counter", "Requests let through: Redis failed."
    )
    lines.append(
        _sample("gateway_throttle_redis_errors_total", data.get("throttle_redis_errors", 0))
    )
    return "\n".join(lines) + "\n"


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _sample(name: str, value: float, **labels: str) -> str:
    if not labels:
        return f"{name} {value}"
    rendered = ",".join(f'{key}="{_escape(str(label))}"' for key, label in labels.items())
    return f"{name}{{{rendered}}} {value}"


def _escape(label: str) -> str:
    return label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
