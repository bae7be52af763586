"""The tick: one per second, consecutive seqs, idempotent per time slot, never stalled."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.layers import get_channel_layer

from quotes import keys, services, tasks
from quotes.conf import conf
from quotes.market import Market

T0 = 1_800_000_000.0  # a whole second


def market() -> Market:
    return Market.from_conf(conf())


def expected_prices(ticks: int) -> dict[str, int]:
    """The prices after `ticks` ticks, computed straight from the model."""
    the_market, prices = market(), dict(market().opening)
    for seq in range(1, ticks + 1):
        prices = the_market.step(prices, seq)
    return prices


def stored_prices(redis_client) -> dict[str, int]:
    the_market = market()
    latest = {s: json.loads(q) for s, q in redis_client.hgetall(keys.latest()).items()}
    return {
        s: the_market.ticks(latest[s.encode()]["price"]) if s.encode() in latest else ticks
        for s, ticks in the_market.opening.items()
    }


def stored_seqs(redis_client) -> list[int]:
    return [int(entry_id.split(b"-")[0]) for entry_id, _ in redis_client.xrange(keys.ticks())]


def in_lockstep(monkeypatch, parties: int = 2) -> None:
    """Make each thread's first market step wait until every thread has read the state."""
    barrier, original, seen = threading.Barrier(parties, timeout=5), Market.step, set()

    def step(self, prices, seq):
        if threading.get_ident() not in seen:
            seen.add(threading.get_ident())
            barrier.wait()
        return original(self, prices, seq)

    monkeypatch.setattr(Market, "step", step)


def test_ticks_in_successive_seconds_have_consecutive_seqs(quotes_settings, redis_client):
    ticks = [services.tick(now=T0 + second + 0.25) for second in range(3)]

    assert [t["seq"] for t in ticks] == [1, 2, 3]
    assert [t["ts"] for t in ticks] == [1_800_000_000_250, 1_800_000_001_250, 1_800_000_002_250]
    assert stored_seqs(redis_client) == [1, 2, 3]
    assert stored_prices(redis_client) == expected_prices(3)
    assert redis_client.hgetall(keys.meta()) == {
        b"seq": b"3",
        b"slot": b"1800000002",
        b"ts": b"1800000002250",
    }


def test_a_tick_lists_exactly_the_quotes_that_moved(quotes_settings, redis_client):
    before, after = expected_prices(0), expected_prices(1)

    tick = services.tick(now=T0)

    moved = [s for s in after if after[s] != before[s]]
    assert [q["symbol"] for q in tick["quotes"]] == moved
    assert 0 < len(moved) < len(after)  # the seed moves most prices, and leaves some alone


def test_a_second_tick_in_the_same_second_does_nothing(quotes_settings, redis_client):
    first = services.tick(now=T0 + 0.1)

    retried = services.tick(now=T0 + 0.9)  # a retried task, or a second beat

    assert first["seq"] == 1
    assert retried is None
    assert stored_seqs(redis_client) == [1]
    assert stored_prices(redis_client) == expected_prices(1)


def test_two_concurrent_ticks_for_one_second_advance_the_market_once(
    quotes_settings, redis_client, monkeypatch
):
    in_lockstep(monkeypatch)  # both read seq 0 before either writes: the race, every time

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda now: services.tick(now=now), [T0 + 0.2, T0 + 0.7]))
    monkeypatch.undo()

    assert sorted(r is None for r in results) == [False, True]
    assert stored_seqs(redis_client) == [1]
    assert stored_prices(redis_client) == expected_prices(1)


def test_concurrent_ticks_for_different_seconds_never_skip_nor_repeat_a_seq(
    quotes_settings, redis_client, monkeypatch
):
    in_lockstep(monkeypatch, parties=3)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda now: services.tick(now=now), [T0, T0 + 1, T0 + 2]))
    monkeypatch.undo()

    # Whichever commits first wins its slot; the others read again, and a slot older than the
    # last stored one is dropped as late. Either way: seqs 1..n, each applied exactly once.
    committed = sorted(r["seq"] for r in results if r is not None)
    assert committed == list(range(1, len(committed) + 1))
    assert stored_seqs(redis_client) == committed
    assert stored_prices(redis_client) == expected_prices(len(committed))


def test_a_late_tick_for_an_earlier_second_is_dropped(quotes_settings, redis_client):
    services.tick(now=T0 + 5)

    late = services.tick(now=T0 + 4)

    assert late is None
    assert stored_seqs(redis_client) == [1]


def test_a_tick_that_fails_to_publish_does_not_stall_the_next(
    quotes_settings, redis_client, monkeypatch
):
    layer = get_channel_layer()

    async def broken_group_send(group, message):
        raise ConnectionError("channel layer down")

    monkeypatch.setattr(layer, "group_send", broken_group_send)
    with pytest.raises(ConnectionError):
        services.tick(now=T0)
    monkeypatch.undo()

    following = services.tick(now=T0 + 1)

    assert following["seq"] == 2
    assert stored_seqs(redis_client) == [1, 2]  # the failed one was stored: clients can replay it


def test_history_keeps_the_last_history_length_ticks(quotes_settings, redis_client):
    quotes_settings["HISTORY_LENGTH"] = 3

    for second in range(5):
        services.tick(now=T0 + second)

    assert stored_seqs(redis_client) == [3, 4, 5]
    assert redis_client.xlen(keys.history("ACME")) <= 3


def test_the_celery_task_ticks(quotes_settings, redis_client):
    result = tasks.tick.apply()

    assert result.get() == 1
    assert tasks.tick.apply().get() is None or stored_seqs(redis_client) == [1, 2]


def test_beat_schedules_the_tick_every_second(settings):
    assert settings.CELERY_BEAT_SCHEDULE["quotes-tick"] == {
        "task": "quotes.tasks.tick",
        "schedule": 1.0,
    }
