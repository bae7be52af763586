"""Every Redis key the gateway uses, in one place.

Keys that one Lua script touches together share a hash tag (`{…}`), so they live in one slot of a
Redis Cluster.
"""

import functools
import hashlib
from typing import Any

from django.conf import settings


@functools.cache  # read on every request; `settings` is a LazySettings, ~0.3 µs a read
def _prefix() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:gw"


def reset(**kwargs: Any) -> None:
    """Forget the prefix, so that a changed REDIS_KEY_PREFIX takes effect (tests)."""
    if kwargs.get("setting", "REDIS_KEY_PREFIX") == "REDIS_KEY_PREFIX":
        _prefix.cache_clear()
        cache_base.cache_clear()


@functools.lru_cache(maxsize=4096)
def url_hash(url: str) -> str:
    return hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()


def throttle(policy: str, identity: str) -> str:
    """GCRA state (theoretical arrival time) of one client under one policy."""
    return f"{_prefix()}:rl:{{{identity}}}:{policy}"


def cache_prefix() -> str:
    """The prefix of every key whose change the in-process caches must hear of (and no other's)."""
    return f"{_prefix()}:cache:"


@functools.lru_cache(maxsize=4096)  # a HIT names two keys of its URL
def cache_base(url: str) -> str:
    """The prefix of every key of one URL: its Vary spec, entries, variants and pass marker."""
    return f"{cache_prefix()}{{{url_hash(url)}}}"


def cache_pattern() -> str:
    """A SCAN pattern matching every key of the response cache."""
    return f"{_prefix()}:cache:*"


def cache_vary(url: str) -> str:
    return f"{cache_base(url)}:vary"


def cache_variants(url: str) -> str:
    """The set of entry keys stored for a URL, one per Vary variant (what a URL purge drops)."""
    return f"{cache_base(url)}:variants"


def cache_pass(url: str) -> str:
    """Marks a URL whose responses are not storable, so its misses are not collapsed."""
    return f"{cache_base(url)}:pass"


# The locks live outside cache_prefix(): every instance would otherwise be told of each one taken.


def cache_fill_lock(url: str) -> str:
    return f"{_prefix()}:lock:{{{url_hash(url)}}}:fill"


def cache_refresh_lock(entry_key: str) -> str:
    """Held while one background or client-forced revalidation of an entry runs."""
    return f"{_prefix()}:lock:{entry_key.removeprefix(cache_prefix())}:refresh"


def cache_tag(tag: str) -> str:
    """The set of entry keys labelled with a Cache-Tag."""
    return f"{_prefix()}:tag:{tag}"


def metrics_totals() -> str:
    return f"{_prefix()}:metrics:totals"


def metrics_second(second: int) -> str:
    return f"{_prefix()}:metrics:second:{second}"
