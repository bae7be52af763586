"""The access-token deny-list: logged-out access tokens, each kept only until it would expire."""

import time
from typing import Any

from config.redis_wiring import app_client
from sessions_demo import keys
from sessions_demo.conf import sessions_setting


def enabled() -> bool:
    """Return whether logout revokes access tokens (JWT_REVOKE_ACCESS_ON_LOGOUT)."""
    return bool(sessions_setting("REVOKE_ACCESS_ON_LOGOUT"))


def deny(claims: dict[str, Any]) -> None:
    """Deny the access token with these claims for the rest of its lifetime."""
    remaining = int(claims["exp"] - time.time())
    if remaining > 0:
        app_client().set(keys.denied_access_token(claims["jti"]), 1, ex=remaining)


def is_denied(jti: str) -> bool:
    """Return whether the access token with this jti was revoked."""
    return bool(app_client().exists(keys.denied_access_token(jti)))
