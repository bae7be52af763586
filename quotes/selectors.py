"""Reads of the quotes app (sync, for the REST views); quotes.feed has the async ones."""

from __future__ import annotations

import copy
import json
from typing import Any, TypedDict, cast

from django.http import Http404

from config.redis_wiring import app_client
from quotes import keys
from quotes.conf import conf
from quotes.market import Market, Quote


class QuoteList(TypedDict):
    """The latest quotes of some symbols, with the seq and time of the tick they are from."""

    seq: int
    ts: int | None
    quotes: list[Quote]


# The settings the market was last built from (a deep copy: tests change QUOTES, SYMBOLS too, in
# place), and that market. Built on every call it was ~3% of a WebSocket join's CPU (a Decimal
# division a symbol, two or three times a join).
_built: tuple[dict[str, Any], Market] | None = None


def market() -> Market:
    """Return the market the settings describe, built again only when they change."""
    global _built
    settings = conf()
    if _built is None or _built[0] != settings:
        _built = (copy.deepcopy(settings), Market.from_conf(settings))
    return _built[1]


def latest_view(
    the_market: Market, meta: dict[str, str], latest: dict[str, str], symbols: list[str]
) -> QuoteList:
    """Shape the stored meta and latest hashes as {seq, ts, quotes} for `symbols`."""
    # Opening quotes only stand in before a symbol's first tick: not made for every read.
    opening = the_market.opening_quotes() if any(s not in latest for s in symbols) else {}
    quotes = [json.loads(latest[s]) if s in latest else opening[s] for s in symbols]
    ts = meta.get("ts")
    return {"seq": int(meta.get("seq", 0)), "ts": None if ts is None else int(ts), "quotes": quotes}


def unknown_symbols(symbols: list[str]) -> list[str]:
    """Return the symbols in `symbols` that the market does not list."""
    known = market().opening
    return [symbol for symbol in symbols if symbol not in known]


def quotes_latest() -> QuoteList:
    """Return the latest quote of every symbol, with the seq and time of the last tick."""
    the_market = market()
    with app_client().pipeline() as pipe:  # MULTI/EXEC: the seq and the quotes of one moment
        pipe.hgetall(keys.meta())
        pipe.hgetall(keys.latest())
        meta, latest = pipe.execute()
    return latest_view(the_market, meta, latest, list(the_market.opening))


def quote_get(*, symbol: str) -> Quote:
    """Return the latest quote of `symbol`; Http404 when the market does not list it."""
    the_market = market()
    if symbol not in the_market.opening:
        raise Http404(f"Unknown symbol {symbol!r}.")
    stored = app_client().hget(keys.latest(), symbol)
    return json.loads(stored) if stored else the_market.opening_quotes()[symbol]


def quote_history(*, symbol: str, limit: int) -> list[Quote]:
    """Return the last `limit` quotes of `symbol`, oldest first (the opening before any tick)."""
    the_market = market()
    if symbol not in the_market.opening:
        raise Http404(f"Unknown symbol {symbol!r}.")
    # The apps' client decodes replies (decode_responses=True): ids, fields and values are str.
    # XREVRANGE lists only entries that exist, each with its fields (redis-py's hint allows None).
    entries = cast(
        list[tuple[str, dict[str, str]]],
        app_client().xrevrange(keys.history(symbol), count=limit),
    )
    if not entries:
        return [the_market.opening_quotes()[symbol]]
    return [json.loads(fields["quote"]) for _id, fields in reversed(entries)]
