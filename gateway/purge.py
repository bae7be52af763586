"""Purge the shared response caches by tag or URL: the apps' one way to reach the gateway cache."""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Iterable

import redis
from django.conf import settings

from config.redis_wiring import app_client
from gateway import keys
from gateway.conf import gateway_setting

logger = logging.getLogger(__name__)

# KEYS: sets of entry keys (a tag's, a URL's variants) and plain keys. Drops every member of each
# set, then the keys themselves, atomically.
PURGE_KEYS_SCRIPT = """
local dropped = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'set' then
    for _, member in ipairs(redis.call('SMEMBERS', key)) do
      dropped = dropped + redis.call('DEL', member)
    end
  end
  redis.call('DEL', key)
end
return dropped
"""
EDGE_TIMEOUT_SECONDS = 2


def tags(cache_tags: Iterable[str]) -> int:
    """Drop every cached response labelled with one of `cache_tags`; return how many."""
    cache_tags = sorted(set(cache_tags))
    dropped = sum(_purge([keys.cache_tag(tag)]) for tag in cache_tags)
    _tell_edges("BAN", "/", {"X-Cache-Tags": "|".join(cache_tags)})
    return dropped


def urls(paths: Iterable[str]) -> int:
    """Drop every stored variant of these URL paths; return how many entries were dropped."""
    paths = sorted(set(paths))
    # One call per URL: a URL's keys share a slot (a Redis Cluster's), two URLs' need not.
    dropped = sum(_purge([keys.cache_variants(path), keys.cache_vary(path)]) for path in paths)
    for path in paths:
        _tell_edges("PURGE", path, {})
    return dropped


def everything() -> int:
    """Drop every entry of the response cache (after a deploy that changes what pages render)."""
    client = app_client()
    dropped = 0
    for pattern in (keys.cache_pattern(), keys.cache_tag("*")):
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                dropped += client.delete(*batch)
                batch = []
        if batch:
            dropped += client.delete(*batch)
    _tell_edges("BAN", "/", {"X-Cache-Tags": "*"})
    return dropped


def _purge(script_keys: list[str]) -> int:
    """Drop the members of these sets (entry keys), then the keys themselves."""
    try:
        client = app_client()
        if settings.REDIS["stores"].kind == "cluster":
            # A tag's entries are spread over the slots of their URLs, which one script cannot
            # reach: read the set, then delete its members slot by slot (redis-py splits it).
            members = [m for key in script_keys if client.type(key) == "set"
                       for m in client.smembers(key)]  # fmt: skip
            dropped = int(client.delete(*members)) if members else 0
            client.delete(*script_keys)
            return dropped
        # EVALSHA: the script's text is sent once per Redis server, not on every purge.
        return int(client.register_script(PURGE_KEYS_SCRIPT)(keys=script_keys))
    except redis.RedisError as exc:
        # Entries expire on their own; a purge that cannot reach Redis must not fail the write.
        logger.error(
            "purge of %d keys failed, stale entries expire by TTL: %s", len(script_keys), exc
        )
        return 0


def _tell_edges(method: str, path: str, headers: dict[str, str]) -> None:
    """Send the purge to each configured edge cache, in the background, never failing the caller."""
    for edge in gateway_setting("EDGE_PURGE_URLS"):
        url = edge.rstrip("/") + path
        threading.Thread(target=_send_purge, args=(method, url, headers), daemon=True).start()


def _send_purge(method: str, url: str, headers: dict[str, str]) -> None:
    try:
        request = urllib.request.Request(url, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=EDGE_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        logger.warning("edge purge %s %s failed: %s", method, url, exc)
