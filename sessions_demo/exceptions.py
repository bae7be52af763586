"""The API errors sessions_demo raises; config.errors gives each the one error shape."""

from rest_framework import exceptions, status
from rest_framework_simplejwt.exceptions import AuthenticationFailed as SimpleJWTAuthFailed


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The draft has changed since you read it (If-Match does not match its ETag)."
    default_code = "precondition_failed"


class DraftTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "draft_too_large"


class TooManyDrafts(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "too_many_drafts"


class ConcurrentUpdate(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The draft changed while it was being saved; read it again and retry."
    default_code = "concurrent_update"


class IdempotencyInFlight(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still being processed; retry later."
    default_code = "idempotency_in_flight"


class IdempotencyReplayGone(exceptions.APIException):
    # Not the first 201 again: its Location would name a draft that is no longer there.
    status_code = status.HTTP_410_GONE
    default_detail = (
        "The draft this Idempotency-Key created has since been deleted or has expired; "
        "send a new key to create another."
    )
    default_code = "idempotency_replay_gone"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request body."
    default_code = "idempotency_key_reused"


def plain_auth_error(exc: Exception) -> Exception:
    """Return simplejwt's dict-shaped 401 as DRF's plain one, which config.errors shapes."""
    # simplejwt's errors (its AuthenticationFailed, InvalidToken) carry {"detail", "code",
    # "messages"} as their detail, not one message.
    if isinstance(exc, SimpleJWTAuthFailed) and isinstance(exc.detail, dict):
        return exceptions.AuthenticationFailed(
            str(exc.detail["detail"]), code=str(exc.detail["code"])
        )
    return exc
