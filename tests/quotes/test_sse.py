"""The SSE stream, through a real daphne: event id = seq, Last-Event-ID resume, not blocking."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import sync_to_async

from config.redis_wiring import app_client
from quotes import feed, keys, services, sse
from tests.quotes.sse_client import next_of, read_events

T0 = 1_800_000_000.0

pytestmark = pytest.mark.django_db(transaction=True)


def stream(base_url: str, query: str, **headers: str):
    client = httpx.Client(base_url=base_url, timeout=5)
    return client, client.stream("GET", f"/api/v1/quotes/stream/{query}", headers=headers)


def test_the_stream_starts_with_a_retry_hint_and_a_snapshot_then_ticks(
    live_server_url, quotes_settings
):
    client, request = stream(live_server_url, "?symbols=ACME,BOLT")
    with client, request as response:
        events = read_events(response.iter_lines())

        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-store"
        assert next(events) == {"retry": "2000"}
        snapshot = next(events)
        published = services.tick(now=T0)  # the stream is subscribed once it has sent anything
        tick = next_of(events, "tick")

    assert (snapshot["event"], snapshot["id"], snapshot["data"]["seq"]) == ("snapshot", "0", 0)
    assert [q["symbol"] for q in snapshot["data"]["quotes"]] == ["ACME", "BOLT"]
    assert tick == {
        "id": "1",
        "event": "tick",
        "data": {
            "type": "tick",
            "seq": 1,
            "ts": published["ts"],
            "quotes": [q for q in published["quotes"] if q["symbol"] in {"ACME", "BOLT"}],
        },
    }


def test_last_event_id_resumes_with_exactly_the_missed_ticks(live_server_url, quotes_settings):
    published = [services.tick(now=T0 + second) for second in range(4)]

    client, request = stream(live_server_url, "?symbols=ACME", **{"Last-Event-ID": "1"})
    with client, request as response:
        events = read_events(response.iter_lines())
        next(events)  # retry
        replayed = [next(events) for _ in range(3)]

    assert [(e["event"], e["id"]) for e in replayed] == [
        ("tick", "2"),
        ("tick", "3"),
        ("tick", "4"),
    ]
    assert [e["data"]["quotes"] for e in replayed] == [
        [q for q in t["quotes"] if q["symbol"] == "ACME"] for t in published[1:]
    ]


def test_a_resume_past_the_kept_history_gets_a_reset_snapshot(live_server_url, quotes_settings):
    for second in range(3):
        services.tick(now=T0 + second)
    app_client().xtrim(keys.ticks(), maxlen=1)  # as if an hour had passed

    client, request = stream(live_server_url, "?symbols=ACME", **{"Last-Event-ID": "0"})
    with client, request as response:
        events = read_events(response.iter_lines())
        next(events)
        reset = next(events)

    assert (reset["event"], reset["id"], reset["data"]["reset"]) == ("snapshot", "3", True)


@pytest.mark.parametrize(
    ("query", "headers", "body"),
    [
        ("?symbols=ACME,NOPE", {}, {"detail": "Unknown symbols: NOPE.", "code": "unknown_symbol"}),
        (
            "?symbols=ACME",
            {"Last-Event-ID": "soon"},
            {
                "detail": "Last-Event-ID (or since) must be a tick seq (a whole number).",
                "code": "invalid",
            },
        ),
    ],
)
def test_a_bad_request_gets_a_json_400(live_server_url, quotes_settings, query, headers, body):
    response = httpx.get(f"{live_server_url}/api/v1/quotes/stream/{query}", headers=headers)

    assert response.status_code == 400
    assert response.json() == body


def test_open_streams_do_not_block_the_server(live_server_url, quotes_settings):
    streams = [stream(live_server_url, "?symbols=ACME") for _ in range(12)]
    opened = [request.__enter__() for _, request in streams]
    try:
        for response in opened:
            assert next(read_events(response.iter_lines())) == {"retry": "2000"}

        health = httpx.get(f"{live_server_url}/healthz", timeout=5)
        quote = httpx.get(f"{live_server_url}/api/v1/quotes/ACME/", timeout=5)
    finally:
        for (client, request), _ in zip(streams, opened, strict=True):
            request.__exit__(None, None, None)
            client.close()

    assert (health.status_code, quote.status_code) == (200, 200)


@pytest.mark.asyncio
async def test_a_quiet_stream_gets_keep_alive_comments(quotes_settings):
    quotes_settings["HEARTBEAT_SECONDS"] = 0.05
    events = sse.events(["ACME"], None)
    try:
        chunks = [await anext(events) for _ in range(3)]
    finally:
        await events.aclose()
        await feed.close_redis_client()

    assert chunks[0] == "retry: 2000\n\n"
    assert chunks[1].startswith("id: 0\nevent: snapshot\ndata: ")
    assert chunks[2] == ": keep-alive\n\n"


@pytest.mark.asyncio
async def test_a_tick_reaches_the_generator_through_the_channel_layer(quotes_settings):
    events = sse.events(["ACME"], None)
    try:
        await anext(events)
        await anext(events)
        published = await sync_to_async(services.tick)(now=T0)
        chunk = await anext(events)
    finally:
        await events.aclose()
        await feed.close_redis_client()

    assert chunk == sse.sse_event(
        {
            "type": "tick",
            "seq": 1,
            "ts": published["ts"],
            "quotes": [q for q in published["quotes"] if q["symbol"] == "ACME"],
        }
    )
