"""Server-Sent Events: the quote stream for plain HTTP clients (`curl -N`, EventSource)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse

from config.errors import error_body
from quotes.conf import conf
from quotes.feed import (
    FeedMessage,
    Follower,
    Refused,
    encode,
    parse_seq,
    tick_hub,
    validate_symbols,
)
from quotes.selectors import market


def sse_event(message: FeedMessage) -> str:
    """Format a snapshot or tick as one event whose id is its seq."""
    return f"id: {message['seq']}\nevent: {message['type']}\ndata: {encode(message)}\n\n"


async def quote_stream(request: HttpRequest) -> HttpResponseBase:
    """Stream `?symbols=` (default: all) as text/event-stream, resuming after Last-Event-ID."""
    # An async view: each open stream waits on the event loop, holding no thread of daphne's.
    raw_symbols = request.GET.get("symbols")
    try:
        symbols = validate_symbols(
            raw_symbols.split(",") if raw_symbols else list(market().opening)
        )
        since = parse_seq(
            request.headers.get("Last-Event-ID", request.GET.get("since")),
            name="Last-Event-ID (or since)",
        )
    except Refused as error:
        return JsonResponse(error_body(error.detail, error.code), status=400)
    response = StreamingHttpResponse(events(symbols, since), content_type="text/event-stream")
    response["Cache-Control"] = "no-store"  # live data: no cache may keep any of it
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


async def events(symbols: list[str], since: int | None) -> AsyncIterator[str]:
    """Yield the SSE stream: a retry hint, a snapshot or the missed ticks, then every tick."""
    settings = conf()
    hub = tick_hub()
    ticks = await hub.join()  # before reading: no tick falls between the two
    try:
        yield f"retry: {settings['SSE_RETRY_MS']}\n\n"
        follower = Follower()
        messages: list[FeedMessage]
        if since is None:
            messages = [await follower.subscribe(symbols)]
        else:
            messages = await follower.resume(since, symbols)
        for message in messages:
            yield sse_event(message)
        while True:
            try:
                # A get cancelled by the timeout leaves its tick in the queue for the next one.
                async with asyncio.timeout(settings["HEARTBEAT_SECONDS"]):
                    tick = await ticks.get()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            for message in await follower.on_tick(tick):
                yield sse_event(message)
    finally:
        await hub.leave(ticks)
