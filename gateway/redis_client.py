"""The gateway's async Redis client: one per event loop, since a connection belongs to its loop."""

import asyncio
import hashlib
import weakref
from collections.abc import Sequence

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


class Script:
    """A Lua script run by its SHA1 (EVALSHA): its text is sent only when Redis lacks it."""

    # redis-py's AsyncScript binds one client when created, and ours are one per event loop; its
    # NOSCRIPT path is also SCRIPT LOAD plus EVALSHA (two more round trips) where EVAL is one.

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int] = ()) -> object:
        """Run it on this loop's client, in one round trip (two the first time a server sees it)."""
        client = async_redis()
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # A new or restarted Redis: EVAL runs the script and caches it for the next EVALSHA.
            return await client.eval(self.text, len(keys), *keys, *args)
