"""Purge the shared response caches by tag or URL: the apps' one way to reach the gateway cache."""

import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)


def tags(cache_tags: Iterable[str]) -> None:
    """Drop every cached response labelled with one of `cache_tags` (Cache-Tag header)."""
    # The gateway's response cache arrives with its own issue; until then there is nothing to drop.
    logger.debug("purge tags %s", sorted(cache_tags))


def urls(paths: Iterable[str]) -> None:
    """Drop the cached responses for these URL paths."""
    logger.debug("purge urls %s", sorted(paths))
