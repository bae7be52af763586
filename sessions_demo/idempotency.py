"""Idempotency-Key for POST: a retry gets the first response again, and the work is done once.

The first request claims the key (one atomic SET NX); a retry meanwhile gets 409, a retry after
it gets the stored response, and the same key with another body gets 422. Keys are per user.

A claim carries a random token, and the write that completes it checks the token first: a claim
whose request could not give it back (its Redis node died mid-request) lapses after the short
IDEMPOTENCY_LOCK_TTL, and should its request still be running then, its write is refused rather
than done a second time beside the retry that took the key over.
"""

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from rest_framework import exceptions

from config.redis_wiring import app_client, replicated_script
from sessions_demo import keys
from sessions_demo.conf import sessions_setting
from sessions_demo.exceptions import IdempotencyInFlight, IdempotencyKeyReused

HEADER = "Idempotency-Key"
TOUCH = "return redis.call('EXPIRE', KEYS[1], ARGV[1])"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Claim:
    """A key this request holds until it finishes (or the claim's short TTL runs out)."""

    redis_key: str
    fingerprint: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def in_flight(self) -> str:
        """Return the record that holds the key while the request runs (this claim's own)."""
        return json.dumps(
            {"state": "in_flight", "fingerprint": self.fingerprint, "claim": self.token}
        )

    def finished(self, *, status: int, body: dict[str, Any]) -> str:
        """Return the record that replaces the claim once the request has succeeded."""
        return json.dumps(
            {"state": "done", "fingerprint": self.fingerprint, "status": status, "body": body}
        )


def fingerprint(method: str, path: str, data: object) -> str:
    """Return a digest of the request, so that a reused key with another body is caught."""
    canonical = json.dumps([method, path, data], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    *, user_id: str, key: str, request_fingerprint: str
) -> tuple[Claim | None, dict[str, Any] | None]:
    """Claim `key` for this request: return (claim, None), or (None, the earlier finished record).

    Raise 409 while an earlier request with the key is in flight, 422 when its body differed.
    """
    if not _VALID_KEY.match(key):
        raise exceptions.ValidationError({HEADER: ["Must be 1 to 255 visible ASCII characters."]})
    redis_key = keys.idempotency(user_id, hashlib.sha256(key.encode()).hexdigest())
    held = Claim(redis_key, request_fingerprint)
    # SET NX GET (Redis 7+): claim the key, or read who holds it, in one atomic command. GET makes
    # the reply the old value: a str (the apps' client decodes), or None when the key was free.
    previous = cast(
        str | None,
        app_client().set(
            redis_key,
            held.in_flight(),
            nx=True,
            get=True,
            ex=sessions_setting("IDEMPOTENCY_LOCK_TTL"),
        ),
    )
    if previous is None:
        return held, None
    record = json.loads(previous)
    if record["fingerprint"] != request_fingerprint:
        raise IdempotencyKeyReused()
    if record["state"] == "in_flight":
        raise IdempotencyInFlight()
    if settings.REDIS_WAIT_REPLICAS:
        # The first attempt may have been refused (503) for want of a replica after its write
        # ran: a replay is acknowledged only once replicas hold the record, and so the draft
        # written with it. A write, then WAIT (a read would leave nothing to wait for).
        replicated_script(TOUCH, [redis_key], [sessions_setting("IDEMPOTENCY_TTL")])
    return None, record


# Deletes the key only while it is still this request's claim: after a Redis error the write may
# have run, and then the key holds the finished record a retry must get back, not a second draft.
RELEASE_IF_IN_FLIGHT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def release(held: Claim) -> None:
    """Give the key back after a failed request, so that a retry runs again."""
    app_client().register_script(RELEASE_IF_IN_FLIGHT)(
        keys=[held.redis_key], args=[held.in_flight()]
    )
