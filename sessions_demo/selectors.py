"""Reads: drafts and preferences from Redis, the personal feed, token checks."""

import json
from typing import Any, cast

from rest_framework import exceptions
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import UntypedToken

from catalog import selectors as catalog_selectors
from config.redis_wiring import app_client
from sessions_demo import drafts_store, keys, revocation
from sessions_demo.conf import sessions_setting

SUMMARY_FIELDS = ("id", "title", "version", "created_at", "updated_at")


def draft_etag(draft: dict[str, Any]) -> str:
    """Return the strong ETag of a draft: its version."""
    return f'"{draft["version"]}"'


def draft_get(*, user_id: str, draft_id: str) -> dict[str, Any]:
    """Return one draft of the user; another user's draft id is as unknown as a made-up one."""
    draft = drafts_store.get(user_id, draft_id)
    if draft is None:
        raise exceptions.NotFound("No such draft.")
    return draft


def draft_exists(*, user_id: str, draft_id: str) -> bool:
    """Return whether the user still has this draft."""
    return drafts_store.exists(user_id, draft_id)


def draft_list(*, user_id: str) -> list[dict[str, Any]]:
    """Return the user's drafts without their bodies, most recently changed first."""
    drafts = sorted(drafts_store.get_all(user_id), key=lambda d: d["updated_at"], reverse=True)
    return [{field: draft[field] for field in SUMMARY_FIELDS} for draft in drafts]


def existing_category_slugs(slugs: list[str]) -> set[str]:
    """Return which of these slugs name a catalog category."""
    return catalog_selectors.existing_category_slugs(slugs)


def _preferences(raw: str | None) -> dict[str, Any]:
    return json.loads(raw) if raw is not None else {"categories": []}


def preferences_get(*, user_id: str) -> dict[str, Any]:
    """Return the user's feed preferences (no categories until they set some)."""
    # The apps' client decodes replies (decode_responses=True): a str, or None when unset.
    return _preferences(cast(str | None, app_client().get(keys.preferences(user_id))))


def feed(*, user_id: str) -> dict[str, Any]:
    """Return the user's feed: followed categories, draft count, their newest products."""
    pipe = app_client().pipeline(transaction=False)
    pipe.get(keys.preferences(user_id))
    pipe.hlen(keys.drafts(user_id))
    raw_preferences, draft_count = pipe.execute()
    categories = _preferences(raw_preferences)["categories"]
    products = (
        catalog_selectors.newest_products(
            category_slugs=categories, limit=sessions_setting("FEED_PRODUCTS")
        )
        if categories
        else []
    )
    return {"categories": categories, "draft_count": draft_count, "products": products}


def token_check(*, token: str) -> None:
    """Raise TokenError unless `token` is valid, not blacklisted and not revoked."""
    # Checks signature, expiry, iss, aud, jti; any token_type.
    checked = UntypedToken(token)  # type: ignore[arg-type]  # simplejwt's hint says Token; it decodes the encoded JWT
    jti = checked["jti"]
    if BlacklistedToken.objects.filter(token__jti=jti).exists():
        raise TokenError("Token is blacklisted")
    if revocation.enabled() and revocation.is_denied(jti):
        raise TokenError("Token has been revoked")
