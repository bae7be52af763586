"""One error shape for the whole API: JSON `{"detail": …, "code": …}`, HTML pages elsewhere."""

import logging
from typing import Any

import redis
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# A backing service that is down or too slow: the client should retry, so 503, not 500.
# A service down, or, on a Redis Cluster, a slot on the move or a failover under way: unavailable
# for a moment, for every instance alike (503), not a fault of the request (500).
SERVICE_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    OperationalError,
)


def error_body(detail: str, code: str, **extra: object) -> dict[str, object]:
    """Return the body every API error carries."""
    return {"detail": detail, "code": code, **extra}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Shape every exception a DRF view raises as the one error body, a 500 included."""
    # Errors are JSON even from views that render something else (the schema view renders YAML).
    request = context.get("request")
    if request is not None:
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    if isinstance(exc, SERVICE_ERRORS):
        service = "Redis" if isinstance(exc, redis.RedisError) else "The database"
        logger.warning("%s unavailable: %s", service, exc)
        detail = f"{service} is unavailable; try again shortly."
        return Response(error_body(detail, "service_unavailable"), status=503)
    response = exception_handler(exc, context)
    if response is None:
        # DRF leaves unexpected exceptions to Django, whose DEBUG page is HTML: log, answer JSON.
        logger.exception("unhandled error in %s", context["view"].__class__.__name__)
        return Response(error_body("Internal server error.", "server_error"), status=500)
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("Invalid input.", "invalid", errors=response.data)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(str(exc.detail), code)
        # An exception may name headers the client needs (a 412 carries the current ETag).
        for name, value in getattr(exc, "headers", {}).items():
            response.headers[name] = value
    else:  # Http404 and PermissionDenied, which DRF maps to its own exceptions
        code = "not_found" if response.status_code == 404 else "permission_denied"
        response.data = error_body(str(response.data.get("detail", "")), code)
    return response


def _error(request: HttpRequest, status: int, detail: str, code: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body(detail, code), status=status)
    return render(request, "error.html", {"status": status, "detail": detail}, status=status)


def api_not_found(request: HttpRequest, unmatched: str = "") -> HttpResponse:
    """Answer an unknown API route with JSON, even under DEBUG, whose 404 page is HTML."""
    return JsonResponse(error_body("No API endpoint at this path.", "not_found"), status=404)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 400, "Bad request.", "bad_request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403, "You do not have permission to do this.", "permission_denied")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "Not found.", "not_found")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Refuse a cookie-authenticated write without its CSRF token: JSON under /api/."""
    return _error(request, 403, f"CSRF check failed: {reason}", "csrf_failed")


def server_error(request: HttpRequest) -> HttpResponse:
    return _error(request, 500, "Internal server error.", "server_error")
