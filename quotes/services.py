"""Writes of the quotes app: the tick that moves the market, stores it and publishes it."""

from __future__ import annotations

import json
import logging
import math
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from config.redis_wiring import app_client
from quotes import keys
from quotes.conf import conf
from quotes.market import Market, Tick

logger = logging.getLogger(__name__)

# Store a tick atomically, and only if (a) its time slot has no tick yet (else 0: a duplicate beat
# or a retried task) and (b) nobody advanced the market since the caller read it (else -1: read
# again). The streams are written first: a Redis script keeps the writes it made before an error,
# and an XADD refused for its id must leave the sequence untouched.
#   KEYS: meta, latest, ticks, then the history stream of each changed symbol
#   ARGV: seq read, slot, ts, history length, tick JSON, then symbol and quote JSON per change
_COMMIT = """
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local slot = tonumber(redis.call('HGET', KEYS[1], 'slot') or '-1')
if tonumber(ARGV[2]) <= slot then return 0 end
if seq ~= tonumber(ARGV[1]) then return -1 end
local id = tostring(seq + 1) .. '-0'
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[4], id, 'tick', ARGV[5])
for i = 6, #ARGV, 2 do
    redis.call('XADD', KEYS[4 + (i - 6) / 2], 'MAXLEN', ARGV[4], id, 'quote', ARGV[i + 1])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'seq', seq + 1, 'slot', ARGV[2], 'ts', ARGV[3])
return seq + 1
"""
# Another tick committing between our read and our write is rare (two workers, different slots);
# reading again a few times always settles it.
_ATTEMPTS = 3


def tick(*, now: float | None = None) -> Tick | None:
    """Advance the market one tick and publish it; return None when this second already ticked."""
    moved = advance(now=now)
    if moved is not None:
        publish(moved)
    return moved


def advance(*, now: float | None = None) -> Tick | None:
    """Move every price one tick and store it, once per whole second of `now` (default: now)."""
    now = time.time() if now is None else now
    slot = math.floor(now)
    settings = conf()
    market = Market.from_conf(settings)
    client = app_client()
    commit = client.register_script(_COMMIT)
    for _ in range(_ATTEMPTS):
        with client.pipeline() as pipe:  # MULTI/EXEC: the seq and the prices of one moment
            pipe.hgetall(keys.meta())
            pipe.hgetall(keys.latest())
            meta, latest = pipe.execute()
        seq = int(meta.get("seq", 0))
        if slot <= int(meta.get("slot", -1)):
            return None
        prices = dict(market.opening)
        for symbol, quote in latest.items():
            if symbol in prices:
                prices[symbol] = market.ticks(json.loads(quote)["price"])
        moved = market.step(prices, seq + 1)
        ts = int(now * 1000)
        changed = [
            market.quote(symbol, moved[symbol], prices[symbol], seq + 1, ts)
            for symbol in moved
            if moved[symbol] != prices[symbol]
        ]
        new_tick: Tick = {"seq": seq + 1, "ts": ts, "quotes": changed}
        history_keys = [keys.history(quote["symbol"]) for quote in changed]
        pairs = [item for quote in changed for item in (quote["symbol"], json.dumps(quote))]
        result = commit(
            keys=[keys.meta(), keys.latest(), keys.ticks(), *history_keys],
            args=[seq, slot, ts, settings["HISTORY_LENGTH"], json.dumps(new_tick), *pairs],
        )
        if result > 0:
            return new_tick
        if result == 0:
            return None
    logger.warning("tick for slot %s gave up: the market kept moving under it", slot)
    return None


def publish(new_tick: Tick) -> None:
    """Send a stored tick to every connection in the quotes group (one message per tick)."""
    layer = get_channel_layer()
    # As its JSON, the same text as stored: each server process decodes it once for all its
    # clients (quotes.feed), where a dict would be unpacked by the layer once per client.
    event = {"type": "quotes.tick", "tick": json.dumps(new_tick)}
    async_to_sync(layer.group_send)(keys.GROUP, event)
