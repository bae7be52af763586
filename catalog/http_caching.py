"""HTTP caching for catalog responses, API and HTML alike: one place sets every caching header."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.http import http_date, parse_etags

from catalog.conf import catalog_setting
from config.errors import error_body

CACHE_TAG_HEADER = "Cache-Tag"


def conditional(
    request: HttpRequest,
    response: HttpResponse,
    *,
    etag: str,
    last_modified: datetime | None,
    cache_tags: Iterable[str],
) -> HttpResponse:
    """Set the caching headers, then answer 304 or 412 instead when the conditions say so.

    The 304 carries ETag, Last-Modified, Cache-Control and Vary as the 200 would: Django's
    get_conditional_response copies them from the response it is given.
    """
    response.headers["ETag"] = etag
    if last_modified is not None:
        response.headers["Last-Modified"] = http_date(last_modified.timestamp())
    # No `public`: s-maxage already lets a shared cache store an answer to a request with
    # Authorization (RFC 9111 3.5), and browsers store it anyway.
    patch_cache_control(
        response,
        max_age=catalog_setting("BROWSER_MAX_AGE"),
        s_maxage=catalog_setting("SHARED_MAX_AGE"),
        stale_while_revalidate=catalog_setting("STALE_WHILE_REVALIDATE"),
        stale_if_error=catalog_setting("STALE_IF_ERROR"),
    )
    response.headers[CACHE_TAG_HEADER] = ", ".join(cache_tags)
    timestamp = int(last_modified.timestamp()) if last_modified is not None else None
    # Given a response, Django returns it, or the 304 or 412 that replaces it: never None.
    answer = cast(
        HttpResponse,
        get_conditional_response(request, etag=etag, last_modified=timestamp, response=response),
    )
    if answer.status_code == 412:  # a GET with a stale If-Match: Django's 412 has no body
        body = error_body(
            "The resource has changed; its current ETag is attached.", "precondition_failed"
        )
        return JsonResponse(body, status=412, headers={"ETag": etag})
    return answer


def if_match_etags(request: HttpRequest) -> list[str] | None:
    """Return the ETags of the request's If-Match header, or None when it has none."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    # parse_etags gives ['*'] for a wildcard, [] for a malformed header (which matches nothing).
    return parse_etags(header)
