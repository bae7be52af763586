"""The project's JWTs: simplejwt's, carrying who the user is so that no request asks the DB."""

from typing import Any

from django.contrib.auth.models import AbstractUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken


def refresh_token_for(user: AbstractUser) -> RefreshToken:
    """Return a new refresh token for `user`; its access token inherits the same claims."""
    token = RefreshToken.for_user(user)
    token["username"] = user.get_username()
    token["is_staff"] = user.is_staff
    return token


def token_pair_for(user: AbstractUser) -> dict[str, str]:
    """Return a fresh {"access", "refresh"} pair for `user`."""
    refresh = refresh_token_for(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def access_token_claims(raw_token: str | bytes) -> dict[str, Any]:
    """Return the claims of a valid access token; raise TokenError when it is not one.

    Checks the signature (only the configured algorithm: `alg: none` is refused), exp, iss, aud,
    token_type and jti. The gateway may call this to verify a token once at the edge.
    """
    claims = AccessToken(raw_token).payload  # type: ignore[arg-type]  # simplejwt's hint says Token; it decodes the encoded JWT
    if api_settings.USER_ID_CLAIM not in claims:
        raise TokenError("Token contained no recognizable user identification")
    return claims
