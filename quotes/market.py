"""The price model: a seeded geometric Brownian motion on a tick grid. Pure: no I/O, no clock."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict


class Quote(TypedDict):
    """A symbol's price as clients see it, with the tick that set it (seq 0, no ts: the opening)."""

    symbol: str
    price: float
    change: float
    seq: int
    ts: int | None


class Tick(TypedDict):
    """One move of the market, as stored and published: the quotes that changed."""

    seq: int
    ts: int
    quotes: list[Quote]


@dataclass(frozen=True)
class Market:
    """The symbols, their opening prices (in ticks) and the random walk that moves them."""

    opening: dict[str, int]
    tick_size: Decimal
    volatility: float
    drift: float
    seed: int | str

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> Market:
        """Build the market the QUOTES settings describe."""
        tick_size = Decimal(conf["TICK_SIZE"])
        opening = {}
        for symbol, price in conf["SYMBOLS"].items():
            ticks, remainder = divmod(Decimal(price), tick_size)
            if remainder or ticks < 1:
                raise ValueError(f"{symbol}: {price} is not a positive multiple of {tick_size}")
            opening[symbol] = int(ticks)
        return cls(
            opening, tick_size, float(conf["VOLATILITY"]), float(conf["DRIFT"]), conf["SEED"]
        )

    def step(self, prices: dict[str, int], seq: int) -> dict[str, int]:
        """Return every price after tick `seq`: the same prices and seq always give the same."""
        # Seeded by (seed, seq), not by a generator carried along: any process, a retry included,
        # computes the same move, so a duplicate tick can only ever agree with the first.
        rng = random.Random(f"{self.seed}:{seq}")
        mu = self.drift - self.volatility**2 / 2  # Itô's correction: the median price drifts by mu
        moved = {}
        for symbol, opening in self.opening.items():
            factor = math.exp(mu + self.volatility * rng.gauss(0.0, 1.0))
            # Rounded to the tick grid, and never below one tick: a price is never zero or less.
            moved[symbol] = max(1, round(prices.get(symbol, opening) * factor))
        return moved

    def price(self, ticks: int) -> float:
        """Return a price given in ticks in currency units (exact to the tick, as JSON shows it)."""
        return float(ticks * self.tick_size)

    def ticks(self, price: float) -> int:
        """Return a price given in currency units in ticks."""
        return round(Decimal(str(price)) / self.tick_size)

    def quote(self, symbol: str, ticks: int, previous: int, seq: int, ts: int | None) -> Quote:
        """Return the quote clients see: price, change since the previous tick, seq and time."""
        return {
            "symbol": symbol,
            "price": self.price(ticks),
            "change": self.price(ticks - previous),
            "seq": seq,
            "ts": ts,
        }

    def opening_quotes(self) -> dict[str, Quote]:
        """Return every symbol's quote before the first tick (seq 0, no time)."""
        return {s: self.quote(s, ticks, ticks, 0, None) for s, ticks in self.opening.items()}
