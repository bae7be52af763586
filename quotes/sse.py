"""Server-Sent Events: the quote stream for plain HTTP clients (`curl -N`, EventSource)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse

from config.errors import error_body
from quotes import keys
from quotes.conf import conf
from quotes.feed import Follower, Refused, encode, parse_seq, published_tick, validate_symbols
from quotes.selectors import market


def sse_event(message: dict) -> str:
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
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(keys.GROUP, channel)  # before reading: no tick falls between the two
    receiving = None
    try:
        yield f"retry: {settings['SSE_RETRY_MS']}\n\n"
        follower = Follower()
        if since is None:
            messages = [await follower.subscribe(symbols)]
        else:
            messages = await follower.resume(since, symbols)
        for message in messages:
            yield sse_event(message)
        # One receive stays pending across keep-alives: a cancelled receive would unsubscribe.
        receiving = asyncio.ensure_future(layer.receive(channel))
        while True:
            done, _ = await asyncio.wait({receiving}, timeout=settings["HEARTBEAT_SECONDS"])
            if not done:
                yield ": keep-alive\n\n"
                continue
            event, receiving = receiving.result(), asyncio.ensure_future(layer.receive(channel))
            for message in await follower.on_tick(published_tick(event)):
                yield sse_event(message)
    finally:
        if receiving is not None:
            receiving.cancel()  # the layer's own clean-up (unsubscribing) runs on cancellation
            with contextlib.suppress(asyncio.CancelledError):
                await receiving
        await layer.group_discard(keys.GROUP, channel)
