"""RFC 9111 for a shared cache: what it may store, for how long, and when it may reuse it.

Pure functions of the messages' headers (lower-case names, bytes values) and a clock reading;
gateway.response_cache applies them. Each rule names its section of RFC 9111.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.http import parse_http_date_safe

from gateway.http import Headers, header, header_values

# 1.2.2: a delta-seconds past what a cache can represent is taken as 2^31.
MAX_DELTA_SECONDS = 2**31
# The statuses whose caching semantics this cache knows (RFC 9110 15), for `must-understand`.
UNDERSTOOD_STATUSES = {200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501}
# 3.1: header fields a cache must not store (the connection's, or the proxy's own).
NOT_STORED = {
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade",
    b"trailer", b"proxy-authenticate", b"proxy-authentication-info", b"proxy-authorization",
    b"age",  # 4: a cache generates its own, from the age it stored
}  # fmt: skip
# 3.2: what a 304 must not change in the stored response: its representation's metadata, and
# a cookie, which is the revalidating client's and never the stored response's.
NOT_UPDATED = {
    b"content-encoding", b"content-length", b"content-md5", b"content-range", b"etag",
    b"set-cookie",
}  # fmt: skip
# Directives that forbid serving the response stale, whatever else allows it (4.2.4).
NEVER_STALE = ("must-revalidate", "proxy-revalidate", "no-cache")
INVALID = -1  # a directive or field present but malformed: the response is stale (4.2.1)


def split_list(value: str) -> list[str]:
    """Split a comma-separated field value; a comma in a quoted string is not a separator."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def directives(headers: Headers) -> dict[str, str | None]:
    """Parse every Cache-Control line into {directive: argument or None}; the first one counts."""
    found: dict[str, str | None] = {}
    for value in header_values(headers, b"cache-control"):
        for part in split_list(value.decode("latin-1")):
            name, equals, argument = part.partition("=")
            name = name.strip().lower()
            argument = argument.strip()
            if len(argument) >= 2 and argument[0] == argument[-1] == '"':
                argument = argument[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            if name and name not in found:
                found[name] = argument if equals else None
    return found


def delta_seconds(found: dict[str, str | None], name: str) -> int | None:
    """Return a directive's delta-seconds: None when absent, INVALID when malformed (1.2.2)."""
    if name not in found:
        return None
    raw = found[name]
    if raw is None or not raw.isdigit() or not raw.isascii():
        return INVALID
    return min(int(raw), MAX_DELTA_SECONDS)


def http_date(headers: Headers, name: bytes) -> int | None:
    """Return a header's HTTP-date as a timestamp, or None when absent or invalid."""
    value = header(headers, name)
    return parse_http_date_safe(value.decode("latin-1")) if value else None


def age_value(headers: Headers) -> int | None:
    """Return the Age field: 0 when absent, None when it is anything but one integer (5.1)."""
    values = header_values(headers, b"age")
    if not values:
        return 0
    # One line, one non-negative integer: a list, a fraction or a sign leave the age unknown,
    # and a response of unknown age is treated as stale.
    if len(values) == 1 and values[0].strip().isdigit():
        return min(int(values[0].strip()), MAX_DELTA_SECONDS)
    return None


@dataclass(frozen=True)
class Freshness:
    """How long a stored response may be reused, and what may be done once it is stale."""

    lifetime: int  # 4.2.1: seconds fresh from its creation at the origin
    initial_age: int  # 4.2.3: its age when it reached this cache
    stale_while_revalidate: int
    stale_if_error: int
    never_stale: bool  # must-revalidate, proxy-revalidate or no-cache


def freshness(response_headers: Headers, *, request_time: float, response_time: float) -> Freshness:
    """Return the freshness of a response as a shared cache computes it (4.2.1, 4.2.3, 5.2.2)."""
    found = directives(response_headers)
    lifetime = _lifetime(found, response_headers, response_time)
    age = age_value(response_headers)
    if age is None or "no-cache" in found:
        lifetime = 0  # an unknown age, or 5.2.2.4: every use is validated first
    date = http_date(response_headers, b"date")
    apparent_age = max(0, response_time - date) if date is not None else 0
    corrected_age = (age or 0) + (response_time - request_time)
    return Freshness(
        lifetime=lifetime,
        initial_age=int(max(apparent_age, corrected_age)),
        stale_while_revalidate=max(delta_seconds(found, "stale-while-revalidate") or 0, 0),
        stale_if_error=max(delta_seconds(found, "stale-if-error") or 0, 0),
        never_stale=any(name in found for name in NEVER_STALE),
    )


def _lifetime(found: dict[str, str | None], headers: Headers, response_time: float) -> int:
    # A shared cache takes s-maxage over max-age, and either over Expires (4.2.1).
    for name in ("s-maxage", "max-age"):
        value = delta_seconds(found, name)
        if value is not None:
            return max(value, 0)
    if header(headers, b"expires") is None:
        return 0
    expires = http_date(headers, b"expires")
    if expires is None:
        return 0  # 5.3: an invalid Expires, "0" included, means already expired
    date = http_date(headers, b"date")
    return max(0, int(expires - (date if date is not None else response_time)))


def may_store(status: int, request_headers: Headers, response_headers: Headers) -> bool:
    """Return whether a shared cache may store this response to a GET (3, 3.5)."""
    found = directives(response_headers)
    if status < 200 or status in (206, 304):
        return False  # not final, or partial content and validation answers this cache keeps not
    if "must-understand" in found:
        if status not in UNDERSTOOD_STATUSES:
            return False
    elif "no-store" in found:
        return False  # 5.2.2.3, unless must-understand (5.2.2.3) and the status is understood
    if "private" in found:
        return False  # 5.2.2.7: a shared cache never stores it
    if header(request_headers, b"authorization") is not None and not (
        {"public", "s-maxage", "must-revalidate"} & found.keys()
    ):
        return False  # 3.5
    # Set-Cookie is per-user state: never put in a cache that others read (a choice, not a rule).
    if header(response_headers, b"set-cookie") is not None:
        return False
    # No heuristic freshness here: only what the origin marked as cacheable is stored (3).
    explicit = {"public", "max-age", "s-maxage", "no-cache"} & found.keys()
    return bool(explicit) or header(response_headers, b"expires") is not None


def stored_headers(response_headers: Headers) -> Headers:
    """Return the header fields a cache keeps: none of the connection's, nor listed in it (3.1)."""
    listed = {
        name.strip().lower().encode("latin-1")
        for value in header_values(response_headers, b"connection")
        for name in value.decode("latin-1").split(",")
    }
    return [(k, v) for k, v in response_headers if k not in NOT_STORED and k not in listed]


def updated_headers(stored: Headers, not_modified: Headers) -> Headers:
    """Return a stored response's headers freshened by a 304's (3.2)."""
    fresh = [(k, v) for k, v in stored_headers(not_modified) if k not in NOT_UPDATED]
    replaced = {name for name, _ in fresh}
    return [(k, v) for k, v in stored if k not in replaced] + fresh
