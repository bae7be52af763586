"""DRF authentication by Bearer JWT from its claims alone: no database query, no session."""

from typing import Any, cast

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.models import TokenUser

from sessions_demo import revocation
from sessions_demo.exceptions import plain_auth_error
from sessions_demo.tokens import access_token_claims

# Where the gateway (issue 6) puts the claims of a token it verified at the edge.
SCOPE_CLAIMS_KEY = "auth_claims"


class JWTStatelessAuthentication(JWTStatelessUserAuthentication):
    """Authenticate `Authorization: Bearer <access token>` as a TokenUser built from its claims.

    request.user.id, .username and .is_staff come from the token; request.auth is its claims.
    """

    def authenticate(self, request: Request) -> tuple[TokenUser, dict[str, Any]] | None:  # type: ignore[override]  # DRF takes any auth; simplejwt's hint says its Token, here the claims
        claims = self.claims_from_scope(request)
        if claims is None:
            raw_token = self.raw_token(request)
            if raw_token is None:
                return None
            try:
                claims = access_token_claims(raw_token)
            except TokenError as exc:
                raise exceptions.AuthenticationFailed(str(exc), code="token_not_valid") from exc
        if revocation.enabled() and revocation.is_denied(claims["jti"]):
            raise exceptions.AuthenticationFailed("Token has been revoked.", code="token_revoked")
        return TokenUser(claims), claims  # type: ignore[arg-type]  # TokenUser reads claims by [] and .get: a dict serves

    @staticmethod
    def claims_from_scope(request: Request) -> dict[str, Any] | None:
        """Return claims already verified at the edge, when the gateway put them in the scope."""
        # Trusted without a second check: only code in this process can write the ASGI scope.
        scope = getattr(request._request, "scope", None)
        return scope.get(SCOPE_CLAIMS_KEY) if scope else None

    def raw_token(self, request: Request) -> bytes | None:
        """Return the Bearer token of the request, None when it carries none."""
        # simplejwt's hint says bytes, but without an Authorization header it returns None.
        header = cast(bytes | None, self.get_header(request))
        if header is None:
            return None
        try:
            return self.get_raw_token(header)
        except exceptions.AuthenticationFailed as exc:
            raise plain_auth_error(exc) from exc

    def authenticate_header(self, request: Request) -> str:
        # RFC 6750: name the error only when a token came; a missing one just asks for a token.
        header = self.get_header(request) or b""
        if header.split(b" ", 1)[0] == b"Bearer":
            return 'Bearer error="invalid_token"'
        return 'Bearer realm="api"'


class JWTStatelessScheme(SimpleJWTScheme):  # type: ignore[no-untyped-call]  # drf-spectacular's __init_subclass__ (it registers the extension) is unannotated
    """Document this class in the OpenAPI schema as simplejwt's own: a Bearer JWT."""

    target_class = "sessions_demo.authentication.JWTStatelessAuthentication"
