"""The price model: a seeded geometric Brownian motion on a tick grid, pure."""

import itertools
import json
import math
import statistics
from decimal import Decimal

import pytest

from quotes.conf import DEFAULTS
from quotes.market import Market
from quotes.selectors import latest_view, market


def make_market(**overrides) -> Market:
    return Market.from_conf({**DEFAULTS, **overrides})


def walk(market: Market, steps: int) -> list[dict[str, int]]:
    prices, path = dict(market.opening), []
    for seq in range(1, steps + 1):
        prices = market.step(prices, seq)
        path.append(prices)
    return path


def test_the_default_market_lists_about_twenty_symbols_at_their_opening_prices():
    market = make_market()

    assert len(market.opening) == 20
    assert market.opening["ACME"] == 10000  # 100.00 in ticks of 0.01
    assert market.price(market.opening["ACME"]) == 100.0


def test_prices_stay_positive_even_in_a_crashing_wild_market():
    market = make_market(VOLATILITY=0.5, DRIFT=-0.2, SYMBOLS={"ACME": "0.05", "BOLT": "1.00"})

    path = walk(market, 2000)

    assert min(min(prices.values()) for prices in path) == 1  # floored at one tick, never 0
    assert all(price >= 1 for prices in path for price in prices.values())


def test_prices_are_whole_ticks():
    market = make_market(TICK_SIZE="0.05", SYMBOLS={"ACME": "100.05"})

    path = walk(market, 200)

    for prices in path:
        assert isinstance(prices["ACME"], int)
        assert Decimal(str(market.price(prices["ACME"]))) % Decimal("0.05") == 0


def test_the_same_seed_walks_the_same_path():
    assert walk(make_market(SEED=7), 100) == walk(make_market(SEED=7), 100)


def test_another_seed_walks_another_path():
    assert walk(make_market(SEED=7), 100) != walk(make_market(SEED=8), 100)


def test_a_step_depends_only_on_the_prices_and_the_seq():
    market = make_market()
    prices = {"ACME": 12345, "BOLT": 678}

    first = market.step(prices, 42)

    assert market.step(dict(prices), 42) == first
    assert prices == {"ACME": 12345, "BOLT": 678}  # the input is not modified


def test_log_returns_have_the_configured_volatility_and_drift():
    # A price of a million ticks makes rounding negligible; the seed makes the sample fixed.
    market = make_market(VOLATILITY=0.01, DRIFT=0.0005, SYMBOLS={"ACME": "10000.00"})

    path = walk(market, 5000)

    prices = [market.opening["ACME"]] + [p["ACME"] for p in path]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    assert statistics.stdev(returns) == pytest.approx(0.01, rel=0.05)
    assert statistics.mean(returns) == pytest.approx(0.0005 - 0.01**2 / 2, abs=0.0003)


def test_an_opening_price_off_the_tick_grid_is_refused():
    with pytest.raises(ValueError, match=r"ACME: 10\.005 is not a positive multiple of 0\.01"):
        make_market(SYMBOLS={"ACME": "10.005"})


def test_a_quote_shows_the_price_and_change_in_currency_units():
    market = make_market()

    quote = market.quote("ACME", 10025, 10000, 3, 1_700_000_000_000)

    assert quote == {
        "symbol": "ACME",
        "price": 100.25,
        "change": 0.25,
        "seq": 3,
        "ts": 1_700_000_000_000,
    }


def test_the_settings_market_is_built_once_and_follows_a_change_made_in_place(settings):
    settings.QUOTES = {"SYMBOLS": {"ACME": "100.00"}}

    first = market()
    assert market() is first  # two or three reads a WebSocket join: not rebuilt for each
    settings.QUOTES["SYMBOLS"]["BOLT"] = "42.50"  # as tests do, without a setting_changed signal
    settings.QUOTES["TICK_SIZE"] = "0.05"

    changed = market()
    assert changed.opening == {"ACME": 2000, "BOLT": 850}
    assert changed.tick_size == Decimal("0.05")


def test_a_read_shows_a_symbols_opening_quote_until_its_first_tick():
    the_market = make_market(SYMBOLS={"ACME": "100.00", "BOLT": "42.50"})
    ticked = {"symbol": "ACME", "price": 101.0}

    view = latest_view(the_market, {"seq": "3", "ts": "1700"}, {"ACME": json.dumps(ticked)},
                       ["ACME", "BOLT"])  # fmt: skip

    assert view["seq"] == 3 and view["ts"] == 1700
    assert view["quotes"][0] == ticked
    assert view["quotes"][1] == the_market.opening_quotes()["BOLT"]
    assert view["quotes"][1]["price"] == 42.5
