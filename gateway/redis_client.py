"""The gateway's async Redis client: one per event loop, since a connection belongs to its loop."""

import asyncio
import weakref

import redis.asyncio
from django.conf import settings

# Enough for every request in flight on one instance; past it, callers wait instead of failing.
MAX_CONNECTIONS = 256

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_redis() -> redis.asyncio.Redis:
    """Return this event loop's client of the project's Redis (short timeouts: never a hang)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=MAX_CONNECTIONS,
            timeout=settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            socket_timeout=settings.REDIS_TIMEOUT,
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        _clients[loop] = client
    return client
