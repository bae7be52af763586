"""sessions_demo's settings: `settings.SESSIONS_DEMO` over these defaults (see README)."""

from django.conf import settings

DEFAULTS = {
    # Seconds a user's drafts live after their last read or write (sliding).
    "DRAFT_TTL": 7 * 24 * 3600,
    "MAX_DRAFTS": 100,
    # Bytes of title + body (UTF-8) one draft may hold; more is a 413.
    "MAX_DRAFT_BYTES": 64 * 1024,
    "MAX_TITLE_LENGTH": 200,
    # Seconds a finished Idempotency-Key is remembered (its response replayed).
    "IDEMPOTENCY_TTL": 24 * 3600,
    # Seconds an in-flight Idempotency-Key stays claimed if its request cannot give it back (died,
    # or lost its Redis node): well past the slowest create (3 x REDIS_TIMEOUT), and short, as a
    # retry is told 409 until then. A request still running past it cannot complete the claim.
    "IDEMPOTENCY_LOCK_TTL": 10,
    "MAX_FOLLOWED_CATEGORIES": 50,
    "FEED_PRODUCTS": 10,
    # Logout also denies the access token (a Redis lookup on every authenticated request).
    "REVOKE_ACCESS_ON_LOGOUT": False,
}


def sessions_setting(name: str) -> int:
    """Return one sessions_demo setting, the project's value over the default."""
    return {**DEFAULTS, **settings.SESSIONS_DEMO}[name]
