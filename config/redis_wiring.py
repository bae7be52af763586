"""Derive each Redis consumer's URL from the one REDIS_URL."""

import functools
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis


def with_db(redis_url: str, db: int) -> str:
    """Return `redis_url` pointing at database number `db`."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        # Not urlunsplit: it drops the empty authority, and redis-py needs `unix:///path`.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def db_number(redis_url: str) -> int:
    """Return the database number a Redis URL selects (0 when it names none)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return int(dict(parse_qsl(parts.query)).get("db", 0))
    return int(parts.path.strip("/") or 0)


def kombu_url(redis_url: str) -> str:
    """Return the broker URL Celery's Redis transport expects for `redis_url`."""
    # kombu spells a unix socket `redis+socket://` and the database `virtual_host`.
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    return f"redis+socket://{parts.path}?virtual_host={db_number(redis_url)}"


def consumer_settings(redis_url: str, prefix: str, timeout: float) -> dict[str, Any]:
    """Return the settings of every Redis consumer: one server, each under its own key prefix."""
    return {
        "CACHES": {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": f"{prefix}:cache",
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": timeout, "SOCKET_TIMEOUT": timeout},
            }
        },
        # The pub/sub layer: one PUBLISH per group_send, fanned out inside each server process
        # over one subscriber connection, so it needs two Redis connections per process however
        # many clients it serves. With 500 WebSocket clients here (bench/quotes_layers.py) its
        # group_send took 0.3-1.1 ms against the core layer's 3.6-7.3, and daphne's CPU per
        # message 250-340 us against 350-520; the core layer also ran out of its pool (100, which
        # raises) when 500 clients joined at once. Delivery is at most once: the quotes feed
        # fills any gap from the stored ticks.
        "CHANNEL_LAYERS": {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [redis_url], "prefix": f"{prefix}:asgi"},
            }
        },
        "CELERY_BROKER_URL": kombu_url(redis_url),
        "CELERY_BROKER_TRANSPORT_OPTIONS": {"global_keyprefix": f"{prefix}:celery:"},
    }


@functools.cache
def app_client() -> redis.Redis:
    """Return the client the apps' own stores share (a pool per process; safe across threads)."""
    from django.conf import settings

    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.REDIS_TIMEOUT,
        socket_timeout=settings.REDIS_TIMEOUT,
        decode_responses=True,
    )
