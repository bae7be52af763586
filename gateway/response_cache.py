"""The shared response cache: RFC 9111 for a shared cache, in Redis, in front of Django.

A fresh hit, and a 304 answered from the stored entry, cost one Redis round trip and run no
Django code. A miss goes to Django once however many requests wait for it (collapsing, across
instances), and what the response allows is stored, indexed by its Cache-Tag header for purges.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import msgpack
import redis
from django.utils.http import parse_etags, parse_http_date_safe

from gateway import cache_rules, keys
from gateway.conf import gateway_setting
from gateway.http import (
    ASGIApp,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    header,
    header_values,
    lower_names,
    send_json,
    without,
)
from gateway.local_cache import local_cache
from gateway.metrics import recorder
from gateway.purge import PURGE_KEYS_SCRIPT
from gateway.redis_client import Argument, Script, async_redis

logger = logging.getLogger(__name__)

SERVER_ERRORS = {500, 502, 503, 504}
NOT_MODIFIED_HEADERS = (
    b"cache-control",
    b"content-location",
    b"date",
    b"etag",
    b"expires",
    b"last-modified",
    b"vary",
)
CONDITIONAL_HEADERS = (b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since")
PASS_SECONDS = 30
# A stale entry with a validator is kept this long past its windows, to be revalidated by a
# conditional request (a 304 costs the origin no body) rather than fetched whole.
VALIDATABLE_KEEP_SECONDS = 3600
REFRESH_LOCK_SECONDS = 10
FILL_LOCK_MS = 10_000

# KEYS[1]: the URL's Vary spec, KEYS[2]: its pass marker. ARGV[1]: the entry key prefix, then the
# request's header names and values. Finds the variant this request selects, in one round trip.
# A selecting header's lines are combined and its list's whitespace dropped (RFC 9111 4.1), and
# language tags compared without case, so equivalent requests select one variant.
LOOKUP = """
local spec = redis.call('GET', KEYS[1])
if not spec then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'pass'} end
  return {'miss'}
end
local request = {}
for i = 2, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  request[name] = request[name] and (request[name] .. ',' .. value) or value
end
local parts = {}
for _, name in ipairs(cjson.decode(spec)) do
  local value = (request[name] or ''):gsub('%s*,%s*', ','):gsub('^%s+', ''):gsub('%s+$', '')
  if name == 'accept-language' then value = value:lower() end
  parts[#parts + 1] = name .. ':' .. value
end
local entry_key = ARGV[1] .. ':' .. redis.sha1hex(table.concat(parts, '\\n'))
local entry = redis.call('GET', entry_key)
if not entry then return {'miss', entry_key} end
-- With what an in-process cache keeps: the spec, and how long each key has to live (ms).
return {'hit', entry_key, entry, spec, redis.call('PTTL', entry_key), redis.call('PTTL', KEYS[1])}
"""
RUN_LOOKUP = Script(LOOKUP)
# Releases a lock only while it is still ours: a fill that outlived its lock must not drop the
# next filler's.
RELEASE_OWN_LOCK = Script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
LIST_SPACE = re.compile(rb"\s*,\s*")
NO_VARY_DIGEST = hashlib.sha1(b"", usedforsecurity=False).hexdigest()
RUN_PURGE_KEYS = Script(PURGE_KEYS_SCRIPT)


def variant_key(url: str, vary: list[str], request_headers: Headers) -> str:
    """Return the entry key of the variant a request selects, exactly as the LOOKUP script does."""
    if not vary:
        return f"{keys.cache_base(url)}:entry:{NO_VARY_DIGEST}"
    parts = []
    for name in vary:
        lines = header_values(request_headers, name.encode())
        value = LIST_SPACE.sub(b",", b",".join(lines)).strip()
        parts.append(name.encode() + b":" + (value.lower() if name == "accept-language" else value))
    digest = hashlib.sha1(b"\n".join(parts), usedforsecurity=False).hexdigest()
    return f"{keys.cache_base(url)}:entry:{digest}"


@dataclass
class Entry:
    """A stored response and the freshness it was stored with (RFC 9111 4.2)."""

    status: int
    headers: Headers
    body: bytes
    stored_at: float  # when its response reached this cache
    initial_age: int  # its corrected initial age then (4.2.3)
    fresh_for: int  # its freshness lifetime (4.2.1)
    stale_while_revalidate: int
    stale_if_error: int
    never_stale: bool  # must-revalidate, proxy-revalidate or no-cache: validated once stale
    # What a conditional request is answered from, found once: an entry serves many requests.
    etag: bytes | None = field(init=False, compare=False)
    last_modified: bytes | None = field(init=False, compare=False)
    not_modified_headers: Headers = field(init=False, compare=False)

    def __post_init__(self) -> None:
        self.etag, self.last_modified = response_validators(self.headers)
        self.not_modified_headers = not_modified_headers(self.headers)

    def age(self, now: float) -> int:
        return max(0, int(now - self.stored_at)) + self.initial_age

    def may_serve_stale(self, age: int, window: int) -> bool:
        return not self.never_stale and age < self.fresh_for + window

    def pack(self) -> bytes:
        packed: bytes = msgpack.packb(
            [self.status, [list(h) for h in self.headers], self.body, self.stored_at,
             self.initial_age, self.fresh_for, self.stale_while_revalidate, self.stale_if_error,
             self.never_stale]
        )  # fmt: skip
        return packed

    @classmethod
    def unpack(cls, raw: bytes) -> Entry | None:
        """Return the stored entry, or None for one stored in an older layout (a miss)."""
        fields = msgpack.unpackb(raw, use_list=False)
        if len(fields) != 9:
            return None
        # Tuples, not lists: the headers come out as the (name, value) pairs ASGI sends.
        status, headers, body, *freshness = fields
        return cls(status, list(headers), body, *freshness)


@dataclass
class Captured:
    """A response as the origin sent it, and when it was asked for and answered."""

    status: int = 0
    headers: Headers = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    too_large: bool = False
    request_time: float = 0.0
    response_time: float = 0.0


def storable_entry(
    captured: Captured, request_headers: Headers
) -> tuple[Entry, list[str], list[str]] | None:
    """Return (entry, vary, tags) when a shared cache may store it, else None (RFC 9111 3)."""
    if not captured.complete or captured.too_large:
        return None
    if not cache_rules.may_store(captured.status, request_headers, captured.headers):
        return None
    vary_header = b", ".join(header_values(captured.headers, b"vary")).decode("latin-1")
    vary = sorted({name.strip().lower() for name in vary_header.split(",") if name.strip()})
    if "*" in vary:
        return None
    fresh = cache_rules.freshness(
        captured.headers, request_time=captured.request_time, response_time=captured.response_time
    )
    validator = header(captured.headers, b"etag") or header(captured.headers, b"last-modified")
    windows = 0 if fresh.never_stale else fresh.stale_while_revalidate + fresh.stale_if_error
    if not (fresh.lifetime or validator or windows):
        return None  # stale at once and nothing to revalidate with: every use would fetch it anew
    tags = (header(captured.headers, b"cache-tag") or b"").decode("latin-1")
    entry = Entry(
        status=captured.status,
        headers=cache_rules.stored_headers(captured.headers),
        body=bytes(captured.body),
        stored_at=captured.response_time,
        initial_age=fresh.initial_age,
        fresh_for=fresh.lifetime,
        stale_while_revalidate=fresh.stale_while_revalidate,
        stale_if_error=fresh.stale_if_error,
        never_stale=fresh.never_stale,
    )
    return entry, vary, [tag.strip() for tag in tags.split(",") if tag.strip()]


async def lookup(url: str, request_headers: Headers) -> tuple[str, str, Entry | None]:
    """Find the stored variant a request selects: ("hit", its key, the entry), ("miss", the key
    it would have, None), ("miss", "", None) when nothing is stored, or ("pass", "", None).

    From this process's memory when it holds both the URL's Vary spec and the variant; else from
    Redis, and what it finds is kept in memory.
    """
    memory = local_cache()
    if memory.listening:
        vary = memory.get(keys.cache_vary(url))
        if vary is not None:
            entry_key = variant_key(url, vary, request_headers)
            kept: Entry | None = memory.get(entry_key)
            if kept is not None:
                return "hit", entry_key, kept
    epoch = memory.epoch
    argv: list[Argument] = [f"{keys.cache_base(url)}:entry"]
    for name, value in request_headers:
        argv += [name, value]
    result = await RUN_LOOKUP([keys.cache_vary(url), keys.cache_pass(url)], argv)
    found = result[0].decode()
    entry_key = result[1].decode() if len(result) > 1 else ""
    entry = Entry.unpack(result[2]) if found == "hit" else None
    if entry is None:
        return ("miss" if found == "hit" else found), entry_key, None
    _, _, raw, spec, entry_ttl, spec_ttl = result
    memory.keep(
        epoch,
        [
            (keys.cache_vary(url), json.loads(spec), spec_ttl, len(spec)),
            (entry_key, entry, entry_ttl, len(raw)),
        ],
    )
    return found, entry_key, entry


async def take_turn(lock: str, ttl_ms: int, what: str) -> bool:
    """Whether this request takes `lock` (SET NX for `ttl_ms`); False when Redis cannot say.

    False then, as when another has the turn: the entry in hand is served rather than every such
    request reaching Django while Redis is away.
    """
    try:
        return bool(await async_redis().execute("SET", lock, 1, "NX", "PX", ttl_ms))
    except redis.RedisError as exc:
        logger.warning("cannot take %s's turn, serving the cached entry: %s", what, exc)
        return False


def _weak(tag: str) -> str:
    return tag.removeprefix("W/")  # If-None-Match compares entity tags weakly (RFC 9110 13.1.2)


def response_validators(response_headers: Headers) -> tuple[bytes | None, bytes | None]:
    """Return a response's ETag and Last-Modified, for client_has_it."""
    etag = header(response_headers, b"etag")
    # RFC 9111 4.3.2: without a Last-Modified, the response's Date stands for it.
    last_modified = header(response_headers, b"last-modified") or header(response_headers, b"date")
    return etag, last_modified


def not_modified_headers(response_headers: Headers) -> Headers:
    """Return what a 304 keeps of a response's headers: its metadata, then Age and X-Cache."""
    kept = [(name, value) for name, value in response_headers if name in NOT_MODIFIED_HEADERS]
    return kept + [
        (name, value) for name, value in response_headers if name in (b"age", b"x-cache")
    ]


def client_has_it(
    request_headers: Headers, etag: bytes | None, last_modified: bytes | None
) -> bool:
    """Return whether the client's conditional headers match a response's validators
    (RFC 9110 13.2.2): its ETag, its Last-Modified (or Date; see `response_validators`)."""
    if_none_match = header(request_headers, b"if-none-match")
    if if_none_match is not None:
        if etag is None:
            return False
        if if_none_match == etag:
            return True  # what a revalidating client sends; parsing the list cost more than a HIT
        tags = parse_etags(if_none_match.decode("latin-1"))
        return "*" in tags or _weak(etag.decode("latin-1")) in {_weak(tag) for tag in tags}
    if_modified_since = header(request_headers, b"if-modified-since")
    if if_modified_since is None or last_modified is None:
        return False
    since = parse_http_date_safe(if_modified_since.decode("latin-1"))
    modified = parse_http_date_safe(last_modified.decode("latin-1"))
    return since is not None and modified is not None and modified <= since


async def send_response(
    send: Send, scope: Scope, status: int, headers: Headers, body: bytes
) -> None:
    """Send a whole response: a 304 when the client's copy is current, no body for HEAD."""
    if status == 200 and client_has_it(scope["headers"], *response_validators(headers)):
        await send_not_modified(send, not_modified_headers(headers))
    else:
        await send_whole(send, scope, status, headers, body)


async def send_not_modified(send: Send, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": 304, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def send_whole(send: Send, scope: Scope, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def origin_scope(scope: Scope) -> Scope:
    """The request to send to Django for a storable answer: a plain GET, no conditions."""
    return {**scope, "method": "GET", "headers": without(scope["headers"], *CONDITIONAL_HEADERS)}


def quiet_receive() -> Receive:
    """Return a `receive` for requests the cache makes itself: an empty body, then silence."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Django listens for a disconnect; this client never leaves: a future nobody resolves.
        never: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        return await never

    return receive


def fresh_enough_for(request_cc: dict[str, str | None], entry: Entry, age: int) -> bool:
    """Return whether a fresh entry meets the request's own limits (RFC 9111 5.2.1)."""
    if "no-cache" in request_cc:
        return False
    max_age = cache_rules.delta_seconds(request_cc, "max-age")
    if max_age is not None and age > max_age:
        return False
    min_fresh = cache_rules.delta_seconds(request_cc, "min-fresh")
    return min_fresh is None or entry.fresh_for - age >= min_fresh


def stale_allowed_by(request_cc: dict[str, str | None]) -> int:
    """Return how many seconds past freshness the request accepts (max-stale; 5.2.1.2)."""
    if "max-stale" not in request_cc or "no-cache" in request_cc:
        return 0
    if request_cc["max-stale"] is None:
        return cache_rules.MAX_DELTA_SECONDS  # a bare max-stale: any staleness
    return max(cache_rules.delta_seconds(request_cc, "max-stale") or 0, 0)


def revalidation_scope(scope: Scope, entry: Entry) -> Scope:
    """The request that asks the origin whether a stored entry is still current (RFC 9111 4.3.1)."""
    validators = []
    if etag := header(entry.headers, b"etag"):
        validators.append((b"if-none-match", etag))
    if last_modified := header(entry.headers, b"last-modified"):
        validators.append((b"if-modified-since", last_modified))
    plain = origin_scope(scope)
    return {**plain, "headers": [*plain["headers"], *validators]}


class ResponseCache:
    """Answer GET and HEAD from Redis when RFC 9111 allows; otherwise fetch from Django, once."""

    clock = staticmethod(time.time)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.background: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        stats = recorder(scope)
        if scope["method"] not in ("GET", "HEAD"):
            await self._unsafe(scope, receive, send)
            return
        url = self._url(scope)
        request_cc = cache_rules.directives(scope["headers"])
        # If-Match and If-Unmodified-Since are the origin's to judge, against its current state.
        precondition = header(scope["headers"], b"if-match") or header(
            scope["headers"], b"if-unmodified-since"
        )
        if "no-store" in request_cc or precondition is not None:
            stats.cache_outcome("BYPASS")
            await self.app(scope, receive, self._labelled(send, "BYPASS"))
            return
        try:
            found, entry_key, entry = await lookup(url, scope["headers"])
        except redis.RedisError as exc:
            logger.warning("response cache unavailable, going to the origin: %s", exc)
            stats.cache_outcome("BYPASS")
            await self.app(scope, receive, self._labelled(send, "BYPASS"))
            return
        if found == "pass":
            stats.cache_outcome("BYPASS")
            await self._fetch_and_store(scope, receive, send, url, outcome="BYPASS")
            return
        if entry is None:
            if "only-if-cached" in request_cc:
                await self._not_cached(send)
                return
            stats.cache_outcome("MISS")
            await self._collapsed_miss(scope, receive, send, url)
            return
        age = entry.age(self.clock())
        if age < entry.fresh_for:
            if not request_cc or fresh_enough_for(request_cc, entry, age):
                stats.cache_outcome("HIT")
                await self._serve(send, scope, entry, age, "HIT")
                return
            if not await self._may_revalidate(entry_key):  # clients cannot empty the cache
                stats.cache_outcome("HIT")
                await self._serve(send, scope, entry, age, "HIT")
                return
        elif entry.may_serve_stale(age, stale_allowed_by(request_cc)):
            stats.cache_outcome("STALE")
            await self._serve(send, scope, entry, age, "STALE")
            return
        elif entry.may_serve_stale(age, entry.stale_while_revalidate):
            stats.cache_outcome("STALE")
            await self._serve(send, scope, entry, age, "STALE")
            self._refresh_in_background(scope, url, entry_key, entry)
            return
        if "only-if-cached" in request_cc:
            await self._not_cached(send)
            return
        await self._revalidate_or_serve_stale(scope, receive, send, url, entry, age)

    # --- lookups and serving -------------------------------------------------------------------

    @staticmethod
    def _exempt(scope: Scope) -> bool:
        path = scope["path"]
        return path.startswith(gateway_setting("EXEMPT_PREFIXES")) or path in gateway_setting(
            "STREAM_PATHS"
        )

    @staticmethod
    def _url(scope: Scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        return f"{scope['path']}?{query}" if query else scope["path"]

    async def _serve(self, send: Send, scope: Scope, entry: Entry, age: int, outcome: str) -> None:
        """send_response for a stored entry, from what it keeps for a 304."""
        added = [(b"age", str(age).encode()), (b"x-cache", outcome.encode())]
        if entry.status == 200 and client_has_it(scope["headers"], entry.etag, entry.last_modified):
            await send_not_modified(send, [*entry.not_modified_headers, *added])
        else:
            await send_whole(send, scope, entry.status, [*entry.headers, *added], entry.body)

    @staticmethod
    def _labelled(send: Send, outcome: str) -> Send:
        async def labelled(event: Message) -> None:
            if event["type"] == "http.response.start":
                event = {
                    **event,
                    "headers": [*event.get("headers", []), (b"x-cache", outcome.encode())],
                }
            await send(event)

        return labelled

    # --- going to the origin -------------------------------------------------------------------

    async def _collapsed_miss(self, scope: Scope, receive: Receive, send: Send, url: str) -> None:
        """Let one request per URL fill the entry; the others wait for it, then read it."""
        fill_lock = keys.cache_fill_lock(url)
        token = uuid.uuid4().hex
        try:
            filling = await async_redis().execute("SET", fill_lock, token, "NX", "PX", FILL_LOCK_MS)
            entry = None if filling else await self._filled_by_another(scope, url)
        except redis.RedisError as exc:
            # Redis went away after the lookup: each request goes to Django, uncollapsed.
            logger.warning("cannot collapse a miss, going to the origin: %s", exc)
            filling, entry = False, None
        if entry is not None:
            recorder(scope).cache_outcome("HIT")  # served from the entry another request filled
            await self._serve(send, scope, entry, entry.age(self.clock()), "HIT")
            return
        try:
            await self._fetch_and_store(scope, receive, send, url, outcome="MISS")
        finally:
            if filling:
                try:
                    await RELEASE_OWN_LOCK([fill_lock], [token])
                except redis.RedisError as exc:  # it expires by itself in FILL_LOCK_MS
                    logger.warning("could not release a fill lock: %s", exc)

    async def _filled_by_another(self, scope: Scope, url: str) -> Entry | None:
        """Wait for the request filling `url` to store it; None when it stores nothing in time."""
        client = async_redis()
        fill_lock = keys.cache_fill_lock(url)
        deadline = self.clock() + gateway_setting("COLLAPSE_WAIT_SECONDS")
        pause = 0.005
        while self.clock() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
            found, _, entry = await lookup(url, scope["headers"])
            if entry is not None:
                return entry
            if found == "pass" or not await client.execute("EXISTS", fill_lock):
                return None  # the filler's response was not storable: fetch our own
        return None

    async def _fetch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send | None,
        upstream: Scope | None = None,
    ) -> Captured:
        """Run Django for a storable GET (`upstream`, else the plain GET of `scope`); stream the
        answer to `send` as it comes unless it is None."""
        captured = Captured(request_time=self.clock())
        cap = gateway_setting("CACHE_MAX_ENTRY_BYTES")
        not_modified = False

        async def capture(event: Message) -> None:
            nonlocal not_modified
            if event["type"] == "http.response.start":
                captured.response_time = self.clock()
                captured.status = event["status"]
                captured.headers = lower_names(event.get("headers", []))
                if send is None:
                    return
                headers = [*captured.headers, (b"x-cache", b"MISS")]
                not_modified = captured.status == 200 and client_has_it(
                    scope["headers"], *response_validators(headers)
                )
                if not_modified:
                    kept = [
                        (k, v) for k, v in headers if k in NOT_MODIFIED_HEADERS or k == b"x-cache"
                    ]
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                else:
                    await send({**event, "headers": headers})
            elif event["type"] == "http.response.body":
                body = event.get("body", b"")
                if len(captured.body) + len(body) > cap:
                    captured.too_large = True
                else:
                    captured.body += body
                captured.complete = not event.get("more_body", False)
                if send is not None:
                    if not_modified or scope["method"] == "HEAD":
                        event = {**event, "body": b""}
                    await send(event)
            elif send is not None:
                await send(event)

        await self.app(upstream or origin_scope(scope), receive, capture)
        return captured

    async def _fetch_and_store(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        url: str,
        *,
        outcome: str,
    ) -> None:
        captured = await self._fetch(scope, receive, self._labelled_outcome(send, outcome))
        await self._store(url, scope["headers"], captured)

    @staticmethod
    def _labelled_outcome(send: Send, outcome: str) -> Send:
        if outcome == "MISS":
            return send

        async def relabel(event: Message) -> None:
            if event["type"] == "http.response.start":
                headers = [
                    (k, outcome.encode() if k == b"x-cache" else v) for k, v in event["headers"]
                ]
                event = {**event, "headers": headers}
            await send(event)

        return relabel

    async def _revalidate_or_serve_stale(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        url: str,
        entry: Entry,
        age: int,
    ) -> None:
        """Ask the origin whether the entry is current; serve it stale if the origin fails and
        the entry allows it (stale-if-error), never when it says must-revalidate."""
        stats = recorder(scope)
        may_serve = age < entry.fresh_for or entry.may_serve_stale(age, entry.stale_if_error)
        try:
            captured, revalidated = await self._validate(scope, receive, url, entry)
        except Exception:  # any failure of the origin is what stale-if-error covers
            logger.exception("origin failed for %s", url)
            if not may_serve:
                raise
            stats.cache_outcome("STALE")
            await self._serve(send, scope, entry, age, "STALE")
            return
        if captured.status in SERVER_ERRORS and may_serve:
            stats.cache_outcome("STALE")
            await self._serve(send, scope, entry, age, "STALE")
            return
        if revalidated is not None:
            stats.cache_outcome("REVALIDATED")
            age = revalidated.age(self.clock())
            await self._serve(send, scope, revalidated, age, "REVALIDATED")
            return
        stats.cache_outcome("MISS")
        headers = [*captured.headers, (b"x-cache", b"MISS")]
        await send_response(send, scope, captured.status, headers, bytes(captured.body))

    async def _validate(
        self, scope: Scope, receive: Receive, url: str, entry: Entry
    ) -> tuple[Captured, Entry | None]:
        """Send the origin a conditional request for the entry and store what comes back.

        A 304 makes the stored response current again, its headers freshened by the 304's
        (RFC 9111 4.3.3, 4.3.4): it is returned as the new entry, else None.
        """
        captured = await self._fetch(scope, receive, None, revalidation_scope(scope, entry))
        not_modified = captured.status == 304 and captured.complete
        if not_modified:
            captured.status = entry.status
            captured.headers = cache_rules.updated_headers(entry.headers, captured.headers)
            captured.body = bytearray(entry.body)
        stored = await self._store(url, scope["headers"], captured, replaces=True)
        return captured, stored if not_modified else None

    async def _may_revalidate(self, entry_key: str) -> bool:
        """Let a client's no-cache through to Django at most once per entry per interval.

        Not while Redis cannot say whether the interval's turn is taken: the fresh entry is served,
        as to every client past its turn, rather than every such request reaching Django.
        """
        interval_ms = int(gateway_setting("CLIENT_REVALIDATE_INTERVAL") * 1000)
        return await take_turn(keys.cache_refresh_lock(entry_key), interval_ms, "a revalidation")

    def _refresh_in_background(self, scope: Scope, url: str, entry_key: str, entry: Entry) -> None:
        """stale-while-revalidate: one refresh per entry, after the stale copy has been sent."""

        async def refresh() -> None:
            lock = keys.cache_refresh_lock(entry_key)
            if await take_turn(lock, REFRESH_LOCK_SECONDS * 1000, "a background refresh"):
                await self._validate(scope, quiet_receive(), url, entry)

        task = asyncio.get_running_loop().create_task(refresh())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self) -> None:
        """Wait for the background refreshes in flight (tests)."""
        while self.background:
            await asyncio.gather(*self.background, return_exceptions=True)

    async def _not_cached(self, send: Send) -> None:
        """only-if-cached with nothing storable to give: 504 (RFC 9111 5.2.1.7)."""
        body = {"detail": "Not in the cache, and only-if-cached was asked.", "code": "not_cached"}
        await send_json(send, 504, body, [(b"x-cache", b"MISS")])

    async def _store(
        self, url: str, request_headers: Headers, captured: Captured, *, replaces: bool = False
    ) -> Entry | None:
        """Store the response when a shared cache may; return the entry stored, else None.

        `replaces`: the response answers a revalidation, so when it may not be stored, what
        was stored for its URL must not be served again either.
        """
        stored = storable_entry(captured, request_headers)
        client = async_redis()
        try:
            if stored is None:
                if captured.complete and captured.status not in SERVER_ERRORS:
                    commands: list[tuple[Argument, ...]] = [
                        ("SET", keys.cache_pass(url), 1, "EX", PASS_SECONDS)
                    ]
                    if replaces:
                        commands.append(("DEL", keys.cache_vary(url)))
                    await client.transaction(commands)
                    await local_cache().settled()
                return None
            entry, vary, tags = stored
            entry_key = variant_key(url, vary, request_headers)
            max_ttl = gateway_setting("CACHE_MAX_TTL")
            windows = max(entry.stale_while_revalidate, entry.stale_if_error)
            if header(entry.headers, b"etag") or header(entry.headers, b"last-modified"):
                windows = max(windows, VALIDATABLE_KEEP_SECONDS)
            ttl = min(entry.fresh_for + windows - entry.initial_age, max_ttl)
            if ttl <= 0:
                return None
            # The tag index first: a tag's set lives in its own slot (on a Redis Cluster, not
            # the URL's), and a member whose entry never came is harmless, while an entry no tag
            # names could not be purged.
            await client.execute_many(
                [
                    command
                    for tag in tags
                    for command in (
                        ("SADD", keys.cache_tag(tag), entry_key),
                        ("EXPIRE", keys.cache_tag(tag), max_ttl),
                    )
                ]
            )
            await client.transaction(
                [
                    ("SET", entry_key, entry.pack(), "EX", ttl),
                    ("SET", keys.cache_vary(url), json.dumps(vary), "EX", max_ttl),
                    ("SADD", keys.cache_variants(url), entry_key),
                    ("EXPIRE", keys.cache_variants(url), max_ttl),
                    ("DEL", keys.cache_pass(url)),
                ]
            )
            await local_cache().settled()
        except redis.RedisError as exc:
            logger.warning("could not store %s in the response cache: %s", url, exc)
            return None
        return entry

    # --- unsafe methods --------------------------------------------------------------------------

    async def _unsafe(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass writes through; a successful one invalidates its URL, and the URLs its Location
        and Content-Location name on this host (RFC 9111 4.4)."""
        status = 0
        named: list[bytes] = []

        async def watch(event: Message) -> None:
            nonlocal status
            if event["type"] == "http.response.start":
                # What the write purged (Django's signals) is gone from memory before the
                # client can ask again.
                await local_cache().settled()
                status = event["status"]
                headers = lower_names(event.get("headers", []))
                named.extend(v for k, v in headers if k in (b"location", b"content-location"))
            await send(event)

        await self.app(scope, receive, watch)
        if 200 <= status < 400:
            target = self._url(scope)
            urls = {scope["path"], target}
            host = (header(scope["headers"], b"host") or b"").decode("latin-1")
            for value in named:
                # Resolved against the request's URL; another host's URL is not ours to drop.
                parts = urlsplit(urljoin(target, value.decode("latin-1")))
                if not parts.netloc or parts.netloc == host:
                    urls.add(f"{parts.path}?{parts.query}" if parts.query else parts.path)
            try:
                await purge_urls_async(sorted(urls))
            except redis.RedisError as exc:
                logger.warning("could not invalidate %s after a write: %s", urls, exc)


async def purge_urls_async(urls: list[str]) -> None:
    """Drop every stored variant of these URLs (the async twin of gateway.purge.urls)."""
    # One script per URL: a URL's keys share a slot, two URLs' need not. Sent in one write.
    await asyncio.gather(
        *(RUN_PURGE_KEYS([keys.cache_variants(url), keys.cache_vary(url)]) for url in urls)
    )
    await local_cache().settled()
