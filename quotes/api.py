"""The quotes REST API: the latest quotes and their history, cacheable for a second or two."""

from __future__ import annotations

from typing import TypedDict, cast

from django.http import HttpResponse, HttpResponseBase, JsonResponse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.http import quote_etag
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body
from config.openapi import IF_NONE_MATCH, NOT_MODIFIED, errors, etag_headers
from quotes import selectors
from quotes.conf import conf
from quotes.market import Quote

STREAMS = """
Prices are pushed, not polled: one tick a second, every tick numbered by `seq` (one more each
time) and stamped with the server's time `ts` (epoch milliseconds).

**WebSocket** `/ws/quotes/` (optionally `?symbols=ACME,BOLT&since=<seq>`). Client messages:
`{"type": "subscribe", "symbols": [...]}`, `{"type": "unsubscribe", "symbols": [...]}`,
`{"type": "resume", "since": <seq>}`, `{"type": "ping"}`. Server messages: `snapshot` (seq, ts,
quotes of the symbols, at once on subscribe; `reset: true` when the ticks a resume asked for are
no longer kept), `tick` (seq, ts and the subscribed quotes that changed, an empty list when none
did: every tick reaches every subscribed client, so its seqs have no holes; a client that falls
behind gets one `conflated: true` tick standing for `first_seq`..`seq` with the newest quotes),
`pong`, `heartbeat` (after a quiet spell), `error` (code, detail). Limits per connection: symbols,
message size and messages a second; repeated errors close the socket with 1008.

**Server-Sent Events** `GET /api/v1/quotes/stream/?symbols=ACME,BOLT`: events `snapshot` and
`tick` with `id: <seq>`, resumed after `Last-Event-ID`.

The REST reads below are for a page load or a script: `Cache-Control: public` for a second or
two (enough to absorb a burst) and `ETag` = the seq, so a revalidation is a cheap 304.
"""


class QuoteSerializer(serializers.Serializer[Quote]):
    symbol = serializers.CharField()
    price = serializers.FloatField()
    change = serializers.FloatField(help_text="Since the symbol's previous price.")
    seq = serializers.IntegerField(help_text="The tick that set this price (0: the opening).")
    ts = serializers.IntegerField(allow_null=True, help_text="That tick's time, epoch ms.")


class QuoteListSerializer(serializers.Serializer[selectors.QuoteList]):
    seq = serializers.IntegerField(help_text="The last tick.")
    ts = serializers.IntegerField(allow_null=True)
    quotes = QuoteSerializer(many=True)


class QuoteHistory(TypedDict):
    """The body of a history read: one symbol's recent quotes, oldest first."""

    symbol: str
    quotes: list[Quote]


class QuoteHistorySerializer(serializers.Serializer[QuoteHistory]):
    symbol = serializers.CharField()
    quotes = QuoteSerializer(many=True, help_text="Oldest first.")


class HistoryQuerySerializer(serializers.Serializer[dict[str, int]]):
    limit = serializers.IntegerField(min_value=1, required=False)

    def validate_limit(self, value: int) -> int:
        maximum = conf()["HISTORY_LIMIT_MAX"]
        if value > maximum:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {maximum}."
            )
        return value


def cacheable(request: Request, response: Response, *, seq: int) -> HttpResponseBase:
    """Mark a read public for CACHE_MAX_AGE with ETag = `seq`; answer 304 when it matches."""
    etag = quote_etag(str(seq))
    response["ETag"] = etag
    patch_cache_control(response, public=True, max_age=conf()["CACHE_MAX_AGE"])
    # Django's machinery copies Cache-Control and ETag onto the 304 it builds.
    # Given a response, Django answers with it, a 304 or a 412: never None, as its stub allows.
    answer = cast(HttpResponse, get_conditional_response(request, etag=etag, response=response))
    if answer.status_code == 412:  # a GET with a stale If-Match: Django's 412 has no body
        detail = "The quote has changed; its current ETag is attached."
        return JsonResponse(
            error_body(detail, "precondition_failed"), status=412, headers={"ETag": etag}
        )
    return answer


class ReadSchema(TypedDict):
    """The extend_schema arguments every cacheable read shares."""

    parameters: list[OpenApiParameter]
    auth: list[str]


READ: ReadSchema = {
    "parameters": [IF_NONE_MATCH, *etag_headers(200, 304)],
    "auth": [{}],  # type: ignore[list-item]  # drf-spectacular's "no authentication"; its hint says str
}


class QuotesApiView(APIView):
    # Public data, the same for everybody: never look at who asks (no session, no Vary: Cookie).
    authentication_classes = []
    permission_classes = []


class QuoteListApi(QuotesApiView):
    @extend_schema(
        summary="Latest quotes of every symbol (and how to stream them)",
        description=STREAMS,
        responses={200: QuoteListSerializer, 304: NOT_MODIFIED, **errors(412)},
        tags=["quotes"],
        **READ,
    )
    def get(self, request: Request) -> HttpResponseBase:
        latest = selectors.quotes_latest()
        return cacheable(request, Response(latest), seq=latest["seq"])


class QuoteDetailApi(QuotesApiView):
    @extend_schema(
        summary="Latest quote of one symbol",
        description="ETag is the seq of the tick that last moved the price.",
        responses={200: QuoteSerializer, 304: NOT_MODIFIED, **errors(404, 412)},
        tags=["quotes"],
        **READ,
    )
    def get(self, request: Request, symbol: str) -> HttpResponseBase:
        quote = selectors.quote_get(symbol=symbol)
        return cacheable(request, Response(quote), seq=quote["seq"])


class QuoteHistoryApi(QuotesApiView):
    @extend_schema(
        summary="Recent prices of one symbol",
        description="The last `limit` prices the symbol moved to, oldest first (kept: one hour).",
        parameters=[HistoryQuerySerializer, *READ["parameters"]],
        responses={200: QuoteHistorySerializer, 304: NOT_MODIFIED, **errors(404, 412)},
        tags=["quotes"],
        auth=READ["auth"],
    )
    def get(self, request: Request, symbol: str) -> HttpResponseBase:
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = query.validated_data.get("limit", conf()["HISTORY_LIMIT"])
        quotes = selectors.quote_history(symbol=symbol, limit=limit)
        body: QuoteHistory = {"symbol": symbol, "quotes": quotes}
        return cacheable(request, Response(body), seq=quotes[-1]["seq"])
