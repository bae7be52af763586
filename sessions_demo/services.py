"""Writes: accounts and tokens (database), drafts and preferences (Redis)."""

import json
import uuid
from collections.abc import Mapping
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from config.redis_wiring import app_client
from sessions_demo import drafts_store, keys, revocation
from sessions_demo.conf import sessions_setting
from sessions_demo.exceptions import (
    ConcurrentUpdate,
    DraftTooLarge,
    IdempotencyInFlight,
    PreconditionFailed,
    TooManyDrafts,
)
from sessions_demo.idempotency import Claim
from sessions_demo.selectors import draft_etag, existing_category_slugs
from sessions_demo.tokens import token_pair_for


@transaction.atomic
def user_register(*, username: str, password: str) -> AbstractUser:
    """Create an account; the caller has validated the username and password."""
    try:
        return get_user_model().objects.create_user(username=username, password=password)
    except IntegrityError as exc:  # the same name registered concurrently; nothing else to undo
        raise exceptions.ValidationError(
            {"username": ["A user with that username already exists."]}
        ) from exc


@transaction.atomic
def refresh_token_rotate(*, refresh: str) -> dict[str, str]:
    """Spend a refresh token (it is blacklisted) on a new pair with the user's current claims."""
    # Checks signature, expiry, type, and the blacklist.
    token = RefreshToken(refresh)  # type: ignore[arg-type]  # simplejwt's hint says Token; it decodes the encoded JWT
    user_id = token.get(api_settings.USER_ID_CLAIM)
    user = (
        get_user_model()
        .objects.filter(**{api_settings.USER_ID_FIELD: user_id}, is_active=True)
        .first()
    )
    if user is None:
        raise exceptions.AuthenticationFailed(
            "No active account found for the given token.", code="no_active_account"
        )
    # blacklist() returns get_or_create's (entry, created), though its hint says the entry alone.
    _, newly_blacklisted = cast(tuple[BlacklistedToken, bool], token.blacklist())
    if not newly_blacklisted:  # a concurrent refresh spent it first: a refresh token is single-use
        raise TokenError("Token is blacklisted")
    return token_pair_for(user)


@transaction.atomic
def logout(*, refresh: str, access_claims: dict[str, Any] | None) -> None:
    """Blacklist the refresh token; with JWT_REVOKE_ACCESS_ON_LOGOUT, deny the access token too."""
    RefreshToken(refresh).blacklist()  # type: ignore[arg-type]  # simplejwt's hint says Token; it decodes the encoded JWT
    if access_claims is not None and revocation.enabled():
        revocation.deny(access_claims)


def _now() -> str:
    return timezone.now().isoformat(timespec="milliseconds")


def _check_size(draft: dict[str, Any]) -> None:
    size = len(draft["title"].encode()) + len(draft["body"].encode())
    limit = sessions_setting("MAX_DRAFT_BYTES")
    if size > limit:
        raise DraftTooLarge(
            f"A draft holds at most {limit} bytes of title and body; this is {size}."
        )


def draft_create(
    *, user_id: str, title: str, body: str, claim: Claim | None = None
) -> dict[str, Any]:
    """Store a new draft (and complete the Idempotency-Key `claim` with it, atomically)."""
    now = _now()
    draft = {
        "id": uuid.uuid4().hex,
        "title": title,
        "body": body,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    _check_size(draft)
    outcome = drafts_store.create(
        user_id,
        draft,
        idempotency_key=claim.redis_key if claim else "",
        idempotency_claim=claim.in_flight() if claim else "",
        idempotency_record=claim.finished(status=201, body=draft) if claim else "",
    )
    if outcome == "claim_lost":  # it lapsed, and a retry holds the key now
        raise IdempotencyInFlight()
    if outcome == "full":
        limit = sessions_setting("MAX_DRAFTS")
        raise TooManyDrafts(f"You have {limit} drafts, the most allowed; delete one first.")
    return draft


def _current(user_id: str, draft_id: str, if_match: list[str] | None) -> dict[str, Any]:
    draft = drafts_store.get(user_id, draft_id)
    if draft is None:
        raise exceptions.NotFound("No such draft.")
    if if_match is not None and "*" not in if_match and draft_etag(draft) not in if_match:
        raise PreconditionFailed()
    return draft


def _raise_unless_done(outcome: str, if_match: list[str] | None) -> None:
    if outcome == "missing":
        raise exceptions.NotFound("No such draft.")
    if outcome == "changed":  # written by someone else between our read and our write
        raise PreconditionFailed() if if_match is not None else ConcurrentUpdate()


def draft_update(
    *, user_id: str, draft_id: str, changes: Mapping[str, str], if_match: list[str] | None
) -> dict[str, Any]:
    """Apply `changes` (title, body) to a draft, if it still matches `if_match` when given."""
    current = _current(user_id, draft_id, if_match)
    draft = {**current, **changes, "version": current["version"] + 1, "updated_at": _now()}
    _check_size(draft)
    outcome = drafts_store.replace(user_id, draft, expected_version=current["version"])
    _raise_unless_done(outcome, if_match)
    return draft


def draft_delete(*, user_id: str, draft_id: str, if_match: list[str] | None) -> None:
    """Delete a draft, if it still matches `if_match` when given."""
    current = _current(user_id, draft_id, if_match)
    outcome = drafts_store.delete(user_id, draft_id, expected_version=current["version"])
    _raise_unless_done(outcome, if_match)


def preferences_set(*, user_id: str, categories: list[str]) -> dict[str, list[str]]:
    """Set the categories the user follows; each must exist in the catalog."""
    unknown = sorted(set(categories) - existing_category_slugs(categories))
    if unknown:
        raise exceptions.ValidationError(
            {"categories": [f"Unknown categories: {', '.join(unknown)}."]}
        )
    preferences = {"categories": list(dict.fromkeys(categories))}  # de-duplicated, order kept
    app_client().set(keys.preferences(user_id), json.dumps(preferences))
    return preferences
