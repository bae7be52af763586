"""The quotes WebSocket consumer, through the whole ASGI app, over the real Redis channel layer."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest
import pytest_asyncio
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from quotes import feed, keys, services
from quotes.consumers import QuotesConsumer, SendWindow

T0 = 1_800_000_000.0
ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def close_feed_client():
    yield
    await feed.close_redis_client()


async def tick(second: int, *, publish: bool = True) -> dict:
    """Store the tick of second T0 + `second` and, by default, publish it."""
    if publish:
        return await sync_to_async(services.tick)(now=T0 + second)
    return await sync_to_async(services.advance)(now=T0 + second)


async def connect(query: str = "", subprotocols: list[str] | None = None) -> WebsocketCommunicator:
    from config.asgi import application

    client = WebsocketCommunicator(
        application, f"/ws/quotes/{query}", headers=ORIGIN, subprotocols=subprotocols
    )
    connected, _ = await client.connect()
    assert connected
    return client


def only(symbols: set[str], quotes: list[dict]) -> list[dict]:
    return [quote for quote in quotes if quote["symbol"] in symbols]


async def test_subscribe_sends_a_snapshot_at_once(quotes_settings):
    client = await connect()

    await client.send_json_to({"type": "subscribe", "symbols": ["ACME", "BOLT"]})

    assert await client.receive_json_from() == {
        "type": "snapshot",
        "reset": False,
        "seq": 0,
        "ts": None,
        "quotes": [
            {"symbol": "ACME", "price": 100.0, "change": 0.0, "seq": 0, "ts": None},
            {"symbol": "BOLT", "price": 42.5, "change": 0.0, "seq": 0, "ts": None},
        ],
    }
    await client.disconnect()


async def test_a_tick_carries_only_the_subscribed_symbols(quotes_settings):
    client = await connect("?symbols=ACME")
    await client.receive_json_from()  # the snapshot

    published = await tick(0)

    assert await client.receive_json_from() == {
        "type": "tick",
        "seq": 1,
        "ts": published["ts"],
        "quotes": only({"ACME"}, published["quotes"]),
    }
    assert len(only({"ACME"}, published["quotes"])) == 1
    await client.disconnect()


async def test_every_tick_reaches_a_subscriber_even_when_none_of_its_symbols_moved(
    quotes_settings,
):
    quotes_settings["VOLATILITY"] = 0.0  # nothing ever moves
    client = await connect("?symbols=ACME")
    await client.receive_json_from()

    for second in range(3):
        await tick(second)

    seqs = [(await client.receive_json_from()) for _ in range(3)]
    assert [(m["type"], m["seq"], m["quotes"]) for m in seqs] == [
        ("tick", 1, []),
        ("tick", 2, []),
        ("tick", 3, []),
    ]
    await client.disconnect()


async def test_every_subscriber_gets_the_same_tick(quotes_settings):
    first, second = await connect("?symbols=ACME,BOLT"), await connect("?symbols=ACME,BOLT")
    await first.receive_json_from()
    await second.receive_json_from()

    await tick(0)

    assert await first.receive_json_from() == await second.receive_json_from()
    await first.disconnect()
    await second.disconnect()


async def test_subscribers_with_other_symbols_each_get_their_own_quotes(quotes_settings):
    acme, both = await connect("?symbols=ACME"), await connect("?symbols=ACME,BOLT")
    await acme.receive_json_from()
    await both.receive_json_from()

    published = await tick(0)

    assert (await acme.receive_json_from())["quotes"] == only({"ACME"}, published["quotes"])
    assert (await both.receive_json_from())["quotes"] == only({"ACME", "BOLT"}, published["quotes"])
    await acme.disconnect()
    await both.disconnect()


async def test_a_client_leaving_stops_nobody_elses_ticks(quotes_settings):
    leaving, staying = await connect("?symbols=ACME"), await connect("?symbols=ACME")
    await leaving.receive_json_from()
    await staying.receive_json_from()
    await leaving.disconnect()

    await tick(0)

    assert (await staying.receive_json_from())["seq"] == 1
    await staying.disconnect()


async def test_a_client_joining_after_everyone_left_gets_ticks(quotes_settings):
    first = await connect("?symbols=ACME")
    await first.receive_json_from()
    await first.disconnect()  # the process has no quotes client left
    again = await connect("?symbols=ACME")
    await again.receive_json_from()

    await tick(0)

    assert (await again.receive_json_from())["seq"] == 1
    await again.disconnect()


async def test_a_tick_published_as_a_dict_by_an_older_worker_reaches_the_client(quotes_settings):
    client = await connect("?symbols=ACME")
    await client.receive_json_from()

    published = await tick(0, publish=False)
    await get_channel_layer().group_send(keys.GROUP, {"type": "quotes.tick", "tick": published})

    assert await client.receive_json_from() == {
        "type": "tick",
        "seq": 1,
        "ts": published["ts"],
        "quotes": only({"ACME"}, published["quotes"]),
    }
    await client.disconnect()


async def test_unsubscribe_stops_a_symbol(quotes_settings):
    client = await connect("?symbols=ACME,BOLT")
    await client.receive_json_from()

    await client.send_json_to({"type": "unsubscribe", "symbols": ["BOLT"]})
    published = await tick(0)

    message = await client.receive_json_from()
    assert message["quotes"] == only({"ACME"}, published["quotes"])
    assert only({"BOLT"}, published["quotes"]) != []  # BOLT did move: it was left out
    await client.disconnect()


async def test_a_client_without_symbols_gets_no_ticks(quotes_settings):
    client = await connect()

    await tick(0)

    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def test_ping_gets_a_pong(quotes_settings):
    client = await connect()

    await client.send_json_to({"type": "ping"})

    pong = await client.receive_json_from()
    assert pong["type"] == "pong"
    assert isinstance(pong["ts"], int)
    await client.disconnect()


async def test_since_on_connect_replays_exactly_the_missed_ticks(quotes_settings):
    published = [await tick(second) for second in range(4)]

    client = await connect("?symbols=ACME&since=1")

    replay = [await client.receive_json_from() for _ in range(3)]
    assert replay == [
        {"type": "tick", "seq": t["seq"], "ts": t["ts"], "quotes": only({"ACME"}, t["quotes"])}
        for t in published[1:]
    ]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_since_on_connect_without_symbols_gets_an_error_and_the_socket_stays_open(
    quotes_settings,
):
    await tick(0)

    client = await connect("?since=0")

    assert await client.receive_json_from() == {
        "type": "error",
        "code": "invalid",
        "detail": "since needs symbols in the query string too: ?symbols=ACME&since=41.",
    }
    await client.send_json_to({"type": "subscribe", "symbols": ["ACME"]})
    snapshot = await client.receive_json_from()
    assert (snapshot["type"], snapshot["reset"], snapshot["seq"]) == ("snapshot", False, 1)
    assert [q["symbol"] for q in snapshot["quotes"]] == ["ACME"]
    await client.disconnect()


async def test_a_malformed_since_on_connect_gets_an_error_and_no_snapshot(quotes_settings):
    client = await connect("?symbols=ACME&since=yesterday")

    assert await client.receive_json_from() == {
        "type": "error",
        "code": "invalid",
        "detail": "since must be a tick seq (a whole number).",
    }
    await client.send_json_to({"type": "ping"})
    assert (await client.receive_json_from())["type"] == "pong"  # nothing came in between
    await client.disconnect()


async def test_a_resume_message_replays_after_since(quotes_settings):
    client = await connect("?symbols=BOLT")
    await client.receive_json_from()
    published = [await tick(second) for second in range(2)]
    live = [await client.receive_json_from() for _ in range(2)]

    await client.send_json_to({"type": "resume", "since": 0})

    assert [await client.receive_json_from() for _ in range(2)] == live
    assert [m["seq"] for m in live] == [t["seq"] for t in published]
    await client.disconnect()


async def test_resume_past_the_kept_history_sends_a_reset_snapshot(quotes_settings):
    quotes_settings["HISTORY_LENGTH"] = 2
    for second in range(4):
        await tick(second)

    client = await connect("?symbols=ACME&since=0")

    message = await client.receive_json_from()
    assert (message["type"], message["reset"], message["seq"]) == ("snapshot", True, 4)
    assert [q["symbol"] for q in message["quotes"]] == ["ACME"]
    await client.disconnect()


async def test_resume_from_a_seq_the_market_never_reached_sends_a_reset_snapshot(quotes_settings):
    await tick(0)

    client = await connect("?symbols=ACME&since=99")

    message = await client.receive_json_from()
    assert (message["type"], message["reset"], message["seq"]) == ("snapshot", True, 1)
    await client.disconnect()


async def test_a_tick_lost_on_the_way_is_filled_in_from_history(quotes_settings):
    client = await connect("?symbols=ACME,BOLT")
    await client.receive_json_from()

    lost = await tick(0, publish=False)  # stored, never published
    published = await tick(1)

    messages = [await client.receive_json_from() for _ in range(2)]
    assert [(m["seq"], m["quotes"]) for m in messages] == [
        (1, only({"ACME", "BOLT"}, lost["quotes"])),
        (2, only({"ACME", "BOLT"}, published["quotes"])),
    ]
    await client.disconnect()


async def test_a_client_that_cannot_keep_up_gets_one_conflated_tick(quotes_settings, monkeypatch):
    window = SendWindow()
    monkeypatch.setattr(QuotesConsumer, "window_for", staticmethod(lambda send: window))
    client = await connect("?symbols=ACME,BOLT")
    await client.receive_json_from()
    window.pauseProducing()  # the server's buffer for this client is full

    held = [await tick(second) for second in range(3)]
    assert await client.receive_nothing(timeout=0.3)
    window.resumeProducing()  # the client has read it all
    last = await tick(3)

    newest = {}
    for published in [*held, last]:
        newest.update({q["symbol"]: q for q in only({"ACME", "BOLT"}, published["quotes"])})
    message = await client.receive_json_from()
    assert message == {
        "type": "tick",
        "seq": 4,
        "ts": last["ts"],
        "quotes": list(newest.values()),
        "conflated": True,
        "first_seq": 1,
    }
    await client.disconnect()


def valid_access_token() -> str:
    token = AccessToken()
    token[api_settings.USER_ID_CLAIM] = 1
    return str(token)


async def test_a_valid_token_is_accepted_in_the_query_string(quotes_settings):
    client = await connect(f"?token={valid_access_token()}")

    await client.send_json_to({"type": "ping"})

    assert (await client.receive_json_from())["type"] == "pong"
    await client.disconnect()


async def test_a_valid_token_is_accepted_as_a_subprotocol_and_the_first_one_echoed(
    quotes_settings,
):
    from config.asgi import application

    client = WebsocketCommunicator(
        application, "/ws/quotes/", headers=ORIGIN, subprotocols=["bearer", valid_access_token()]
    )

    connected, subprotocol = await client.connect()

    # A browser drops a connection whose offered subprotocols get none back.
    assert (connected, subprotocol) == (True, "bearer")
    await client.disconnect()


async def test_a_quiet_connection_gets_heartbeats(quotes_settings):
    quotes_settings["HEARTBEAT_SECONDS"] = 0.05
    client = await connect()

    message = await client.receive_json_from()

    assert message["type"] == "heartbeat"
    await client.disconnect()


@pytest.mark.parametrize(
    ("frame", "code", "detail"),
    [
        ("{not json", "bad_json", "The message is not valid JSON."),
        ('["subscribe"]', "unknown_type", "type must be subscribe, unsubscribe, resume or ping."),
        ('{"type": "buy"}', "unknown_type", "type must be subscribe, unsubscribe, resume or ping."),
        # A type that is not a string once crashed the consumer (unhashable in its handler table).
        (
            '{"type": ["subscribe"]}',
            "unknown_type",
            "type must be subscribe, unsubscribe, resume or ping.",
        ),
        (
            '{"type": "subscribe", "symbols": ["ACME", "NOPE", "ZZZ"]}',
            "unknown_symbol",
            "Unknown symbols: NOPE, ZZZ.",
        ),
        (
            '{"type": "subscribe", "symbols": "ACME"}',
            "invalid",
            "symbols must be a non-empty list of ticker symbols.",
        ),
        (
            '{"type": "resume", "since": "yesterday"}',
            "invalid",
            "since must be a tick seq (a whole number).",
        ),
    ],
)
async def test_a_bad_message_gets_an_error(quotes_settings, frame, code, detail):
    client = await connect()

    await client.send_to(text_data=frame)

    assert await client.receive_json_from() == {"type": "error", "code": code, "detail": detail}
    await client.disconnect()


async def test_a_binary_frame_gets_an_error(quotes_settings):
    client = await connect()

    await client.send_to(bytes_data=b'{"type": "ping"}')

    assert (await client.receive_json_from())["code"] == "invalid"
    await client.disconnect()


async def test_too_many_symbols_get_an_error(quotes_settings):
    quotes_settings["MAX_SYMBOLS"] = 2
    client = await connect("?symbols=ACME,BOLT")
    await client.receive_json_from()

    await client.send_json_to({"type": "subscribe", "symbols": ["CRUX"]})

    assert await client.receive_json_from() == {
        "type": "error",
        "code": "too_many_symbols",
        "detail": "At most 2 symbols per connection.",
    }
    await client.disconnect()


async def test_an_oversized_message_gets_an_error(quotes_settings):
    quotes_settings["MAX_MESSAGE_BYTES"] = 64
    client = await connect()

    await client.send_json_to({"type": "subscribe", "symbols": ["ACME"] * 20})

    assert await client.receive_json_from() == {
        "type": "error",
        "code": "message_too_large",
        "detail": "Messages are limited to 64 bytes.",
    }
    await client.disconnect()


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_messages_beyond_the_rate_limit_get_an_error(quotes_settings, monkeypatch):
    quotes_settings["MAX_MESSAGES_PER_SECOND"] = 2
    clock = FrozenClock()
    monkeypatch.setattr(QuotesConsumer, "timer", clock)
    client = await connect()

    for _ in range(3):
        await client.send_json_to({"type": "ping"})
    replies = [(await client.receive_json_from())["type"] for _ in range(3)]
    clock.now += 1  # a second later the budget is back
    await client.send_json_to({"type": "ping"})

    assert replies == ["pong", "pong", "error"]
    assert (await client.receive_json_from())["type"] == "pong"
    await client.disconnect()


async def test_repeated_abuse_closes_the_socket_with_1008(quotes_settings):
    quotes_settings["MAX_ERRORS"] = 2
    client = await connect()

    for _ in range(3):
        await client.send_to(text_data="{not json")
    errors = [(await client.receive_json_from())["code"] for _ in range(3)]

    assert errors == ["bad_json"] * 3
    assert await client.receive_output() == {"type": "websocket.close", "code": 1008}


async def test_errors_spread_out_in_time_do_not_close_the_socket(quotes_settings, monkeypatch):
    quotes_settings.update(MAX_ERRORS=2, ERROR_WINDOW_SECONDS=60)
    clock = FrozenClock()
    monkeypatch.setattr(QuotesConsumer, "timer", clock)
    client = await connect()

    for _ in range(4):
        await client.send_to(text_data="{not json")
        assert (await client.receive_json_from())["code"] == "bad_json"
        clock.now += 31

    await client.send_json_to({"type": "ping"})
    assert (await client.receive_json_from())["type"] == "pong"
    await client.disconnect()


async def test_a_foreign_origin_is_refused(quotes_settings):
    from config.asgi import application

    client = WebsocketCommunicator(
        application, "/ws/quotes/", headers=[(b"origin", b"https://evil.example")]
    )

    connected, _ = await client.connect()

    assert connected is False


class FakeTransport:
    """Twisted's producer registration, as a transport does it."""

    def __init__(self, producer=None) -> None:
        self.producer = producer

    def registerProducer(self, producer, streaming: bool) -> None:
        assert self.producer is None and streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None


class RecordingProducer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")


def daphne_like_send(transport: FakeTransport):
    """A send shaped like daphne's, functools.partial(server.handle_reply, protocol)."""

    class Protocol:
        pass

    protocol = Protocol()
    protocol.transport = transport

    async def handle_reply(protocol, message):
        pass

    return functools.partial(handle_reply, protocol)


async def test_the_window_follows_twisted_flow_control_and_passes_it_on():
    upgraded_from = RecordingProducer()  # daphne leaves the HTTP channel registered
    transport = FakeTransport(upgraded_from)

    window = SendWindow.attach(daphne_like_send(transport))
    window.pauseProducing()
    paused = window.open
    window.resumeProducing()

    assert transport.producer is window
    assert (paused, window.open) == (False, True)
    assert upgraded_from.calls == ["pause", "resume"]
    window.detach()
    assert transport.producer is None


async def test_the_window_sees_through_layers_that_wrap_send_with_functools_wraps():
    transport = FakeTransport()
    send = daphne_like_send(transport)

    @functools.wraps(send)
    async def send_with_headers(message):
        await send(message)

    window = SendWindow.attach(send_with_headers)

    assert transport.producer is window


async def test_without_a_daphne_connection_the_window_stays_open():
    async def other_servers_send(message):
        pass

    window = SendWindow.attach(other_servers_send)
    window.detach()

    assert window.open is True


async def test_a_subscription_that_meets_a_connection_redis_dropped_is_made_again(
    quotes_settings, monkeypatch
):
    # As after a Redis restart or failover: the first subscribe fails on the dropped connection.
    layer = get_channel_layer()
    group_add = layer.group_add
    failures = iter([redis.ConnectionError("Connection closed by server.")])

    async def group_add_failing_once(group: str, channel: str) -> None:
        for failure in failures:
            raise failure
        await group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add_failing_once)
    client = await connect()
    await client.send_json_to({"type": "subscribe", "symbols": ["ACME"]})
    snapshot = await client.receive_json_from()

    published = await tick(1)
    message = await client.receive_json_from()

    assert snapshot["type"] == "snapshot"
    assert (message["type"], message["seq"]) == ("tick", published["seq"])
    await client.disconnect()


def exec_calls(client: redis.Redis) -> int:
    """Return how many MULTI/EXEC transactions the Redis server has run."""
    return client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)


async def test_snapshots_asked_for_at_one_moment_share_one_read_of_the_market(
    quotes_settings, redis_client
):
    # Given a market that has ticked once
    await tick(0)
    before = exec_calls(redis_client)

    # When five clients ask for a snapshot at once
    snapshots = await asyncio.gather(*(feed.snapshot(["ACME", "BOLT"]) for _ in range(5)))

    # Then Redis ran one read, and each got the same state
    assert exec_calls(redis_client) - before == 1
    assert [snapshot["seq"] for snapshot in snapshots] == [1] * 5
    assert all(snapshot == snapshots[0] for snapshot in snapshots)


async def test_a_snapshot_asked_for_after_a_read_ended_reads_again(quotes_settings, redis_client):
    # Given a snapshot read at tick 1
    await tick(0)
    first = await feed.snapshot(["ACME"])

    # When the market ticks and another is asked for
    await tick(1)
    second = await feed.snapshot(["ACME"])

    # Then it is of the new tick, not the shared read's
    assert (first["seq"], second["seq"]) == (1, 2)
    assert second["quotes"][0]["seq"] == 2


def moved(tick_or_message: dict) -> set[str]:
    return {quote["symbol"] for quote in tick_or_message["quotes"]}


async def test_a_tick_no_newer_than_a_symbols_snapshot_leaves_that_symbol_out(quotes_settings):
    follower = feed.Follower()
    await tick(0, publish=False)  # seq 1
    await follower.subscribe(["ACME"])  # ACME as of seq 1
    second = await tick(1, publish=False)  # seq 2, not yet delivered
    # A symbol tick 2 moves, subscribed once tick 2 is stored: its snapshot is as new as tick 2.
    later = sorted(moved(second) - {"ACME"})[0]
    await follower.subscribe([later])
    third = await tick(2, publish=False)

    [at_second] = follower.next_tick(json.dumps(second))
    [at_third] = follower.next_tick(json.dumps(third))

    assert "ACME" in moved(second)
    assert moved(at_second) == {"ACME"}  # `later` from tick 2 would send it back in time
    assert moved(at_third) == {"ACME", later} & moved(third)
    assert later in moved(at_third)
    follower.unsubscribe(["ACME"])
    fourth = await tick(3, publish=False)
    [at_fourth] = follower.next_tick(json.dumps(fourth))
    assert moved(at_fourth) == {later} & moved(fourth)
