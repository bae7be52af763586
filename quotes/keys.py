"""Every Redis name the quotes app uses, under settings.REDIS_KEY_PREFIX.

The market's keys share one hash tag (`{quotes}`): a tick updates them all in one script, so on a
Redis Cluster they live in one slot (one node; the market is small, and written once a second).
"""

from django.conf import settings

# The channel-layer group every quotes connection (WebSocket or SSE) joins; ticks are sent to it.
GROUP = "quotes"


def _key(*parts: str) -> str:
    return ":".join([settings.REDIS_KEY_PREFIX, "{quotes}", *parts])


def meta() -> str:
    """Hash: `seq` of the last tick, its time `slot` (whole seconds) and `ts` (epoch ms)."""
    return _key("meta")


def latest() -> str:
    """Hash: symbol -> the JSON of its latest quote."""
    return _key("latest")


def ticks() -> str:
    """Stream of every tick (field `tick`, JSON), entry id `<seq>-0`, capped."""
    return _key("ticks")


def history(symbol: str) -> str:
    """Stream of one symbol's quotes (field `quote`, JSON), entry id `<seq>-0`, capped."""
    return _key("history", symbol)
