"""The schema's shared parts: the one error body, and what the gateway adds to every API route."""

from __future__ import annotations

from typing import Any

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.request import Request


class ErrorSerializer(serializers.Serializer[dict[str, object]]):
    """Every 4xx and 5xx body of the API (config.errors, and the gateway's own answers)."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(  # type: ignore[assignment]  # DRF's metaclass takes fields off the class; .errors stays Serializer's
        required=False, help_text="Field errors, with code invalid."
    )
    retry_after = serializers.IntegerField(required=False, help_text="Seconds, with a 429.")


MEANINGS = {
    400: "Invalid input, or several bearer tokens at once.",
    401: "A bearer token that is invalid, expired or revoked (WWW-Authenticate says so).",
    403: "Authenticated, but not allowed to do this.",
    404: "Nothing at this address.",
    409: "Conflicts with the resource's current state; read it again and retry.",
    410: "An Idempotency-Key retry whose draft has since been deleted or has expired.",
    412: "If-Match does not match the current ETag (the current one is attached).",
    413: "Too large.",
    415: "The body is not JSON.",
    422: "An Idempotency-Key reused with another body.",
    428: "Send If-Match with the ETag you read, so that no update is lost.",
    429: "Over the rate limit: retry after Retry-After seconds.",
    503: "Redis or the database is unavailable; retry shortly.",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Return the documented error responses for these statuses, all with the one error body."""
    return {status: OpenApiResponse(ErrorSerializer, MEANINGS[status]) for status in statuses}


def header(name: str, description: str, *statuses: int) -> OpenApiParameter:
    """Return a response header, documented on the responses with these statuses."""
    return OpenApiParameter(
        name,
        str,
        OpenApiParameter.HEADER,
        description=description,
        response=list(statuses) if statuses else True,
    )


def etag_headers(*statuses: int) -> list[OpenApiParameter]:
    """Return the caching headers a conditional read sends with its 200 and its 304."""
    return [
        header("ETag", "The version of what you read: send it as If-None-Match.", *statuses),
        header("Cache-Control", "Who may keep the response, and for how long.", *statuses),
    ]


IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", str, OpenApiParameter.HEADER, description="An ETag you hold: 304 when current."
)
NOT_MODIFIED = OpenApiResponse(None, "Your copy (If-None-Match) is current; no body.")

# The same component for a schema in which no view named it (its name comes from the class).
ERROR_COMPONENT = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {}},
        "retry_after": {"type": "integer"},
    },
    "required": ["code", "detail"],
}

# Headers and answers of the gateway (gateway/), which stands in front of every API route.
RATE_LIMIT_HEADERS = {
    "RateLimit": "The tightest policy: its name, requests left (r), seconds to a full quota (t).",
    "RateLimit-Policy": "Every policy this request counts against: quota (q) per window (w, s).",
}
GATEWAY_ERRORS = (400, 401, 429, 503)


def _ref_error() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _string_header(description: str, *, required: bool = False) -> dict[str, Any]:
    return {"schema": {"type": "string"}, "description": description, "required": required}


def add_gateway_responses(
    result: dict[str, Any], generator: SchemaGenerator, request: Request | None, public: bool
) -> dict[str, Any]:
    """Postprocessing hook: add what the gateway answers, and the headers it adds, to every route.

    The gateway is an ASGI layer, not a DRF view, so drf-spectacular cannot see it: a bad bearer
    token (401), several of them (400), the throttle (429 and its headers), Redis down (503).
    """
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR_COMPONENT)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if operation.get("requestBody"):
                responses.setdefault("415", {"description": MEANINGS[415], "content": _ref_error()})
            if "{" in path:
                responses.setdefault("404", {"description": MEANINGS[404], "content": _ref_error()})
            for status in GATEWAY_ERRORS:
                responses.setdefault(
                    str(status), {"description": MEANINGS[status], "content": _ref_error()}
                )
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                for name, description in RATE_LIMIT_HEADERS.items():
                    headers.setdefault(name, _string_header(description))
                if status == "429":
                    headers["Retry-After"] = {
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Seconds to wait before a retry.",
                        "required": True,
                    }
                if status == "401":
                    headers["WWW-Authenticate"] = _string_header("Bearer, with the error.")
    return result
