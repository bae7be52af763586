"""Idempotency-Key for POST: a retry gets the first response again, and the work is done once.

The first request claims the key (one atomic SET NX); a retry meanwhile gets 409, a retry after
it gets the stored response, and the same key with another body gets 422. Keys are per user.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, cast

from rest_framework import exceptions

from config.redis_wiring import app_client
from sessions_demo import keys
from sessions_demo.conf import sessions_setting
from sessions_demo.exceptions import IdempotencyInFlight, IdempotencyKeyReused

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Claim:
    """A key this request holds until it finishes (or the claim's short TTL runs out)."""

    redis_key: str
    fingerprint: str

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
    in_flight = json.dumps({"state": "in_flight", "fingerprint": request_fingerprint})
    # SET NX GET (Redis 7+): claim the key, or read who holds it, in one atomic command. GET makes
    # the reply the old value: a str (the apps' client decodes), or None when the key was free.
    previous = cast(
        str | None,
        app_client().set(
            redis_key, in_flight, nx=True, get=True, ex=sessions_setting("IDEMPOTENCY_LOCK_TTL")
        ),
    )
    if previous is None:
        return Claim(redis_key, request_fingerprint), None
    record = json.loads(previous)
    if record["fingerprint"] != request_fingerprint:
        raise IdempotencyKeyReused()
    if record["state"] == "in_flight":
        raise IdempotencyInFlight()
    return None, record


def release(held: Claim) -> None:
    """Give the key back after a failed request, so that a retry runs again."""
    app_client().delete(held.redis_key)
