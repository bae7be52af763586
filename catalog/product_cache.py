"""The app-level product cache in Redis: cache-aside with no refill race and no stampede.

A reader notes the product's generation before it reads the database, and stores what it read
only if the generation has not moved since (one Lua script, atomic). Every invalidation bumps the
generation, so a reader that loaded the row just before an update can never put it back after
the invalidation. On a miss, one request per product takes a short lock and loads; the others
wait for the lock and then find the entry it stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

import redis

from catalog import cache_keys
from catalog.conf import catalog_setting
from config.redis_wiring import cache_client

# Keep generations well past any fill in flight; an expired one reads as 0 and still differs.
GENERATION_TTL_SECONDS = 86400
FILL_LOCK_SECONDS = 5
FILL_WAIT_SECONDS = 3
# How long an invalidation keeps trying while its slot is on the move (a Cluster's migration).
INVALIDATE_RETRY_SECONDS = 5.0
INVALIDATE_RETRY_PAUSE = 0.05

# KEYS: a product's generation and its entry. Moves the generation, drops the entry, atomically.
_INVALIDATE = """
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""

_STORE_IF_GENERATION_UNCHANGED = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


def _redis() -> redis.Redis:
    return cache_client()


def get(product_id: int) -> dict[str, Any] | None:
    """Return the cached entry for a product, or None on a miss."""
    raw = _redis().get(cache_keys.product_entry(product_id))
    return json.loads(raw) if raw is not None else None


def generation(product_id: int) -> str:
    """Return the product's current generation; note it before reading the database."""
    # A reply of the cache's client is bytes: it does not decode (no decode_responses).
    raw = cast(bytes | None, _redis().get(cache_keys.product_generation(product_id)))
    return raw.decode() if raw is not None else "0"


def store_if_current(product_id: int, seen_generation: str, entry: dict[str, Any]) -> bool:
    """Store `entry` unless the product was invalidated since `seen_generation`; say if it did."""
    client = _redis()
    stored = client.eval(
        _STORE_IF_GENERATION_UNCHANGED,
        2,
        cache_keys.product_entry(product_id),
        cache_keys.product_generation(product_id),
        seen_generation,
        json.dumps(entry),
        catalog_setting("APP_CACHE_TTL"),
    )
    return bool(stored)


def invalidate(product_ids: Iterable[int]) -> None:
    """Drop the products' entries and move their generations."""
    script = _redis().register_script(_INVALIDATE)
    # A script each: a product's keys share a slot, two products' need not (a Cluster's), and
    # the cluster client follows a slot on the move for a script, not inside a MULTI.
    for product_id in product_ids:
        product_keys = [
            cache_keys.product_generation(product_id),
            cache_keys.product_entry(product_id),
        ]
        deadline = time.monotonic() + INVALIDATE_RETRY_SECONDS
        while True:
            try:
                script(keys=product_keys, args=[GENERATION_TTL_SECONDS])
                break
            except (redis.exceptions.TryAgainError, redis.exceptions.ClusterError):
                # A Cluster moving the product's slot holds its keys on two nodes for a moment;
                # given up, the entry would outlive the write that made it stale.
                if time.monotonic() > deadline:
                    raise
                time.sleep(INVALIDATE_RETRY_PAUSE)


@contextmanager
def fill_lock(product_id: int) -> Iterator[bool]:
    """Hold the product's fill lock while loading it; yield False if it could not be had in time."""
    lock = _redis().lock(
        cache_keys.product_fill_lock(product_id),
        timeout=FILL_LOCK_SECONDS,
        blocking_timeout=FILL_WAIT_SECONDS,
        sleep=0.005,
    )
    acquired = lock.acquire()
    try:
        yield acquired
    finally:
        if acquired:
            # A load that outlived the lock's timeout finds it expired already: nothing to release.
            with suppress(redis.exceptions.LockNotOwnedError):
                lock.release()
