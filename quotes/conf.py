"""Settings of the quotes app: `settings.QUOTES` merged over these defaults."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Fictional tickers and their opening prices (strings: they are exact multiples of TICK_SIZE).
    "SYMBOLS": {
        "ACME": "100.00",
        "BOLT": "42.50",
        "CRUX": "18.20",
        "DYNO": "250.00",
        "EPIC": "75.25",
        "FLUX": "12.80",
        "GLOW": "33.30",
        "HALO": "120.00",
        "IRIS": "64.10",
        "JADE": "88.80",
        "KITE": "21.75",
        "LUMA": "150.40",
        "MOXY": "9.95",
        "NOVA": "310.00",
        "ORBT": "47.60",
        "PIXL": "27.35",
        "QUIX": "56.00",
        "RUBY": "199.99",
        "SOLR": "14.45",
        "TIDE": "71.20",
    },
    "TICK_SIZE": "0.01",
    # The random walk: standard deviation and mean of one second's log return, and its seed.
    "VOLATILITY": 0.002,
    "DRIFT": 0.0,
    "SEED": 2026,
    # Ticks kept for resume and history: 3600 is one hour at one tick a second.
    "HISTORY_LENGTH": 3600,
    # Seconds a client or shared cache may reuse a REST read: prices move every second.
    "CACHE_MAX_AGE": 1,
    "HISTORY_LIMIT": 100,  # points per history read, by default
    "HISTORY_LIMIT_MAX": 1000,
    # Per-connection limits (WebSocket; MAX_SYMBOLS applies to SSE too).
    "MAX_SYMBOLS": 50,
    "MAX_MESSAGE_BYTES": 4096,
    "MAX_MESSAGES_PER_SECOND": 10,
    # More client errors than this within ERROR_WINDOW_SECONDS close the socket with 1008.
    "MAX_ERRORS": 5,
    "ERROR_WINDOW_SECONDS": 60,
    # Seconds of silence after which a connection gets a heartbeat (WebSocket) or comment (SSE).
    "HEARTBEAT_SECONDS": 15,
    "SSE_RETRY_MS": 2000,
    # Redis connections the async readers (consumers, SSE) of a process share; callers queue.
    "REDIS_POOL_SIZE": 50,
}


def conf() -> dict[str, Any]:
    """Return the quotes settings: `settings.QUOTES` over the defaults, checked."""
    merged = {**DEFAULTS, **settings.QUOTES}
    if not 1 <= merged["CACHE_MAX_AGE"] <= 5:
        raise ImproperlyConfigured("QUOTES['CACHE_MAX_AGE'] must be 1 to 5 seconds.")
    return merged
