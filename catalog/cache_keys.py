"""Every Redis key the catalog writes, in one place.

A product's keys carry its id as a hash tag (`{…}`): on a Redis Cluster its entry, generation
and fill lock share one slot, so the store-if-unchanged script runs on one node.
"""

from django.conf import settings


def _prefix() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:catalog"


def product_entry(product_id: int) -> str:
    """The cached, serialised product."""
    return f"{_prefix()}:product:{{{product_id}}}"


def product_generation(product_id: int) -> str:
    """A counter bumped by every invalidation: a fill started before it moved is thrown away."""
    return f"{_prefix()}:product:{{{product_id}}}:generation"


def product_fill_lock(product_id: int) -> str:
    """Held by the one request that loads a missing product from the database."""
    return f"{_prefix()}:product:{{{product_id}}}:fill-lock"
