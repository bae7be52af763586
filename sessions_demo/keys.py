"""Every Redis key sessions_demo reads or writes, all under settings.REDIS_KEY_PREFIX.

A user's keys carry the user id as a hash tag (`{…}`): on a Redis Cluster they share one slot,
so a script that writes a draft and its Idempotency-Key record together runs on one node.
"""

from django.conf import settings


def drafts(user_id: str) -> str:
    """Return the hash of a user's drafts: field = draft id, value = the draft as JSON."""
    return f"{settings.REDIS_KEY_PREFIX}:drafts:{{{user_id}}}"


def idempotency(user_id: str, key_digest: str) -> str:
    """Return the record of one Idempotency-Key (its SHA-256, so any header value fits)."""
    return f"{settings.REDIS_KEY_PREFIX}:idempotency:{{{user_id}}}:{key_digest}"


def preferences(user_id: str) -> str:
    """Return the JSON string of a user's feed preferences."""
    return f"{settings.REDIS_KEY_PREFIX}:preferences:{{{user_id}}}"


def denied_access_token(jti: str) -> str:
    """Return the deny-list entry of a logged-out access token, kept until the token expires."""
    return f"{settings.REDIS_KEY_PREFIX}:jwt-denied:{jti}"
