"""Throttling shared by every instance: GCRA in one atomic Redis call, per policy and client.

DRF's throttles read, decide and write in three steps from each process, so two instances can both
admit the last request of a window; and they count fixed windows, which allow a double burst at a
window's edge. This is the Generic Cell Rate Algorithm, decided inside Redis by one Lua script
that checks and updates every policy a request falls under, on Redis's own clock.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from typing import Any, NamedTuple

import redis

from gateway import keys
from gateway.auth import CLAIMS_KEY
from gateway.conf import Rate, gateway_setting
from gateway.context import RESPONSE_HEADERS_KEY
from gateway.http import ASGIApp, Receive, Scope, Send, header, send_json
from gateway.metrics import recorder
from gateway.redis_client import Script

logger = logging.getLogger(__name__)

MAX_FORWARDED_FOR_BYTES = 1024
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# KEYS: one GCRA state per policy. ARGV: per policy, its period and limit (ms, count).
# All policies must admit the request, or none is charged. Returns {admitted, retry_after_ms,
# then per policy: remaining, ms until the quota is whole again}.
GCRA = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tats, retry_after = {}, 0
for i = 1, #KEYS do
  local period, limit = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local interval = period / limit
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  -- The 0.001 ms of slack absorbs float rounding: 7 * (60000 / 7) is a hair over 60000.
  local wait = tat + interval - period - now
  if wait > 0.001 then retry_after = math.max(retry_after, wait) end
  tats[i] = tat
end
local admitted = retry_after == 0
local result = {admitted and 1 or 0, math.ceil(retry_after)}
for i = 1, #KEYS do
  local period, limit = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local interval = period / limit
  local tat = tats[i]
  if admitted then
    tat = tat + interval
    -- At rates past ~1,000/ms the interval vanishes in the float: PX 0 would be an error.
    redis.call('SET', KEYS[i], tostring(tat), 'PX', math.max(1, math.ceil(tat - now)))
  end
  result[#result + 1] = math.max(0, math.floor((now + period - tat) / interval))
  result[#result + 1] = math.ceil(tat - now)
end
return result
"""
RUN_GCRA = Script(GCRA)


# NamedTuples: a frozen dataclass's __init__ costs ~0.3 µs more, and one or two are made a request.
class Policy(NamedTuple):
    name: str
    identity: str
    rate: Rate


class Decision(NamedTuple):
    admitted: bool
    retry_after: int  # seconds
    headers: list[tuple[bytes, bytes]]
    exhausted: str | None  # on a refusal, the first policy with nothing left


class BadForwardedFor(Exception):
    pass


def client_ip(scope: Scope, trusted_hops: int) -> str:
    """Return the client's address: the socket's, or the one `trusted_hops` proxies vouch for."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if trusted_hops <= 0:
        return peer  # X-Forwarded-For is whatever the client wrote: ignore it
    forwarded = header(scope["headers"], b"x-forwarded-for")
    if forwarded is None:
        return peer
    if len(forwarded) > MAX_FORWARDED_FOR_BYTES:
        raise BadForwardedFor("X-Forwarded-For is too long.")
    hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",")]
    try:
        addresses = [str(ipaddress.ip_address(hop)) for hop in hops]
    except ValueError:
        raise BadForwardedFor(
            "X-Forwarded-For holds something that is not an IP address."
        ) from None
    # Each trusted proxy appended the address it saw: count from the right, never trust the left.
    return addresses[-trusted_hops] if len(addresses) >= trusted_hops else addresses[0]


def policies_for(scope: Scope, ip: str) -> list[Policy]:
    """Return the policies this request or connection falls under."""
    rates: dict[str, Rate] = gateway_setting("RATES")
    if scope["type"] == "websocket" or scope["path"] in gateway_setting("STREAM_PATHS"):
        return [Policy("connect", f"ip:{ip}", rates["connect"])]
    claims = scope.get(CLAIMS_KEY)
    who = f"user:{claims['user_id']}" if claims else f"ip:{ip}"
    policies = [
        Policy("user", who, rates["user"]) if claims else Policy("anon", who, rates["anon"])
    ]
    if scope["method"] in WRITE_METHODS:
        policies.append(Policy("write", who, rates["write"]))
    if scope["path"] in gateway_setting("AUTH_PATHS"):
        policies.append(Policy("auth", f"ip:{ip}", rates["auth"]))
    return policies


def rate_limit_headers(policies: list[Policy], counts: list[int]) -> list[tuple[bytes, bytes]]:
    """Return RateLimit-Policy and RateLimit (IETF draft) for the policies and the Lua counts."""
    remaining = counts[0::2]
    tightest = remaining.index(min(remaining))  # the fewest left; the first of a tie
    reset_seconds = math.ceil(counts[2 * tightest + 1] / 1000)
    current = f'"{policies[tightest].name}";r={remaining[tightest]};t={reset_seconds}'
    # Formatted each time: a cache keyed by the rates cost as much (hashing them).
    quotas = ", ".join([f'"{p.name}";q={p.rate.limit};w={p.rate.period}' for p in policies])
    return [(b"ratelimit-policy", quotas.encode()), (b"ratelimit", current.encode())]


async def decide(policies: list[Policy]) -> Decision:
    """Charge the request to every policy at once, in one Redis round trip."""
    if len(policies) == 1 or len({p.identity for p in policies}) == 1:
        admitted, retry_after_ms, counts = await charge(policies)
    else:
        admitted, retry_after_ms, counts = await charge_each_identity(policies)
    exhausted = None
    if not admitted:
        exhausted = next(
            (p.name for p, left in zip(policies, counts[0::2], strict=True) if left == 0), None
        )
    return Decision(
        admitted, math.ceil(retry_after_ms / 1000), rate_limit_headers(policies, counts), exhausted
    )


async def charge(policies: list[Policy]) -> tuple[bool, int, list[int]]:
    """Run the GCRA script over policies of one identity: (admitted, retry after ms, counts)."""
    arguments = [number for p in policies for number in (p.rate.period * 1000, p.rate.limit)]
    script_keys = [keys.throttle(p.name, p.identity) for p in policies]
    # Lua numbers come back as integers: no int() of each.
    admitted, retry_after_ms, *counts = await RUN_GCRA(script_keys, arguments)
    return bool(admitted), retry_after_ms, counts


async def charge_each_identity(policies: list[Policy]) -> tuple[bool, int, list[int]]:
    """Charge policies of several identities (a signed-in user on an auth path), in turn.

    An identity's keys share a hash tag, so on a Redis Cluster one script cannot hold two. One
    script each; a refusal by a later one leaves the earlier charged (a request, once, on a path
    that is rarely called with a token).
    """
    counts_of: dict[str, list[int]] = {}
    admitted, retry_after_ms = True, 0
    for identity in dict.fromkeys(p.identity for p in policies):
        group = [p for p in policies if p.identity == identity]
        admitted, retry_after_ms, counts = await charge(group)
        for policy, index in zip(group, range(0, len(counts), 2), strict=True):
            counts_of[policy.name] = counts[index : index + 2]
        if not admitted:
            break
    # A policy not reached (after a refusal) shows its quota as it was: nothing charged.
    whole = [[p.rate.limit, 0] for p in policies]
    return (
        admitted,
        retry_after_ms,
        [n for p, w in zip(policies, whole, strict=True) for n in counts_of.get(p.name, w)],
    )


class Throttle:
    """Refuse what is over its rate with 429 and Retry-After; label the rest with RateLimit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(
            gateway_setting("EXEMPT_PREFIXES")
        ):
            await self.app(scope, receive, send)
            return
        try:
            ip = client_ip(scope, gateway_setting("TRUSTED_PROXY_HOPS"))
        except BadForwardedFor as exc:
            await refuse(
                scope, receive, send, 400, {"detail": str(exc), "code": "bad_forwarded_for"}
            )
            return
        policies = policies_for(scope, ip)
        try:
            decision = await decide(policies)
        except redis.RedisError as exc:
            recorder(scope).throttle_error()
            if gateway_setting("THROTTLE_ON_REDIS_ERROR") == "closed":
                logger.error("throttle unavailable, refusing: %s", exc)
                body: dict[str, Any] = {
                    "detail": "Rate limiting is unavailable; try again shortly.",
                    "code": "service_unavailable",
                }
                await refuse(scope, receive, send, 503, body)
                return
            logger.warning("throttle unavailable, letting the request through: %s", exc)
            await self.app(scope, receive, send)
            return
        if not decision.admitted:
            recorder(scope).throttled_by(decision.exhausted or policies[0].name)
            body = {
                "detail": f"Too many requests; retry in {decision.retry_after} s.",
                "code": "throttled",
                "retry_after": decision.retry_after,
            }
            headers = [*decision.headers, (b"retry-after", str(decision.retry_after).encode())]
            await refuse(scope, receive, send, 429, body, headers)
            return

        if scope["type"] == "http":
            scope[RESPONSE_HEADERS_KEY].extend(decision.headers)  # a WebSocket has none to label
        await self.app(scope, receive, send)


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    if scope["type"] == "websocket":
        await receive()  # the websocket.connect event
        await send({"type": "websocket.close", "code": 4429 if status == 429 else 1011})
        return
    await send_json(send, status, body, headers)
