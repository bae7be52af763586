"""The gateway's HTTP endpoints: purge (staff), stats (JSON), /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import errors
from gateway import purge, stats


class StringField(serializers.CharField):
    """A string, and only a string: DRF's CharField would accept 1 as "1"."""

    def __init__(self, **kwargs: Any) -> None:
        # A tag or path is taken as sent: trimming would pass a value longer than max_length.
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PurgeSerializer(serializers.Serializer[dict[str, list[str]]]):
    tags = serializers.ListField(child=StringField(max_length=200), required=False, max_length=1000)
    urls = serializers.ListField(
        child=StringField(max_length=2000), required=False, max_length=1000
    )

    def validate(self, data: dict[str, list[str]]) -> dict[str, list[str]]:
        if ("tags" in data) == ("urls" in data):
            raise serializers.ValidationError('Send either "tags" or "urls": a list of strings.')
        for url in data.get("urls", []):
            if not url.startswith("/"):
                raise serializers.ValidationError(
                    {"urls": [f"{url!r} is not a path (start it with /)."]}
                )
        return data


class PurgeApi(APIView):
    """Drop shared-cache entries by tag or URL path; staff only."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=PurgeSerializer,
        responses={
            200: inline_serializer("PurgeResult", {"purged": serializers.IntegerField()}),
            **errors(403),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = PurgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if "tags" in serializer.validated_data:
            purged = purge.tags(serializer.validated_data["tags"])
        else:
            purged = purge.urls(serializer.validated_data["urls"])
        return Response({"purged": purged})


class StatsApi(APIView):
    """The gateway's cluster-wide metrics as JSON: totals per route, and the last minute."""

    permission_classes: list[type[BasePermission]] = []

    @extend_schema(
        responses=inline_serializer(
            "GatewayStats", {"totals": serializers.DictField(), "series": serializers.ListField()}
        ),
        auth=[{}],  # type: ignore[list-item]  # drf-spectacular's "no authentication"; its hint says str
    )
    def get(self, request: Request) -> Response:
        response = Response({"totals": stats.totals(), "series": stats.series()})
        response.headers["Cache-Control"] = "no-store"
        return response


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Export the metrics in the Prometheus text format."""
    return HttpResponse(
        stats.prometheus_text(), content_type="text/plain; version=0.0.4; charset=utf-8"
    )
