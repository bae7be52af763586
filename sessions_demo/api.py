"""The sessions_demo API: tokens, the caller's identity, drafts, preferences and feed.

Every view here is stateless: it knows the caller from the Bearer token alone, and keeps nothing
between requests in memory; per-user state lives in Redis. Every response is `private, no-store`
and varies on Authorization, so no shared cache ever keeps one user's answer for another.
"""

import contextlib
from typing import Any, cast

import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import parse_etags
from django.views.decorators.http import require_GET
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from jwt.algorithms import RSAAlgorithm
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.views import TokenObtainPairView

from config.errors import error_body
from config.openapi import errors, header
from sessions_demo import idempotency, selectors, services
from sessions_demo.authentication import JWTStatelessAuthentication
from sessions_demo.exceptions import IdempotencyReplayGone, plain_auth_error
from sessions_demo.serializers import (
    DraftSerializer,
    DraftSummarySerializer,
    FeedSerializer,
    MeSerializer,
    PreferencesSerializer,
    RefreshSerializer,
    RegisterSerializer,
    TokenObtainSerializer,
    TokenPairSerializer,
    VerifySerializer,
)


def invalid_token(exc: TokenError) -> exceptions.AuthenticationFailed:
    """Return the 401 for a token that failed simplejwt's checks."""
    return exceptions.AuthenticationFailed(str(exc), code="token_not_valid")


class PrivateNoStore(APIView):
    """Mark every response, errors included, personal: `private, no-store`, Vary: Authorization."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        patch_cache_control(response, private=True, no_store=True)
        patch_vary_headers(response, ["Authorization"])
        return response


class StatelessApi(PrivateNoStore):
    """An endpoint for a signed-in user, known by Bearer JWT only (no session, no DB lookup)."""

    authentication_classes = [JWTStatelessAuthentication]
    permission_classes = [IsAuthenticated]

    @property
    def user_id(self) -> str:
        return str(self.request.user.id)


class PublicApi(PrivateNoStore):
    """An endpoint anybody may call (it checks its own credentials), never cached."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # a 401 here stays a 401, as for the other token endpoints


# --- tokens ---------------------------------------------------------------------------------------


@extend_schema_view(post=extend_schema(responses={200: TokenPairSerializer, **errors(401)}))
class TokenObtainApi(PrivateNoStore, TokenObtainPairView):
    """Exchange username and password for an access and a refresh token."""

    serializer_class = TokenObtainSerializer

    def handle_exception(self, exc: Exception) -> Response:
        return super().handle_exception(plain_auth_error(exc))


class TokenRefreshApi(PublicApi):
    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer, **errors(401)})
    def post(self, request: Request) -> Response:
        """Spend a refresh token on a new pair (rotation: the old refresh token stops working)."""
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            pair = services.refresh_token_rotate(refresh=serializer.validated_data["refresh"])
        except TokenError as exc:
            raise invalid_token(exc) from exc
        return Response(pair)


class TokenVerifyApi(PublicApi):
    @extend_schema(request=VerifySerializer, responses={200: None, **errors(401)})
    def post(self, request: Request) -> Response:
        """Answer 200 when the token is valid, not blacklisted and not revoked; else 401."""
        serializer = VerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            selectors.token_check(token=serializer.validated_data["token"])
        except TokenError as exc:
            raise invalid_token(exc) from exc
        return Response({})


class LogoutApi(PrivateNoStore):
    authentication_classes = [JWTStatelessAuthentication]  # optional: the access token to revoke
    permission_classes = [AllowAny]

    @extend_schema(request=RefreshSerializer, responses={204: None, **errors(401)})
    def post(self, request: Request) -> Response:
        """Blacklist the refresh token (and, when configured, revoke the access token sent)."""
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            # JWTStatelessAuthentication's auth is the token's claims (None without a token).
            access_claims = cast(dict[str, Any] | None, request.auth)
            services.logout(
                refresh=serializer.validated_data["refresh"], access_claims=access_claims
            )
        except TokenError as exc:
            raise invalid_token(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class RegisterApi(PublicApi):
    @extend_schema(request=RegisterSerializer, responses={201: RegisterSerializer})
    def post(self, request: Request) -> Response:
        """Create an account (then obtain a token with it)."""
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data)
        return Response(RegisterSerializer(user).data, status=status.HTTP_201_CREATED)


# --- me -------------------------------------------------------------------------------------------


class MeApi(StatelessApi):
    @extend_schema(responses={200: MeSerializer, **errors(401)})
    def get(self, request: Request) -> Response:
        """Return who the token says you are: read from its claims, without a database query."""
        # JWTStatelessAuthentication's user; DRF's hint knows only Django's own users.
        user = cast(TokenUser, request.user)
        return Response(MeSerializer(user).data)


class PreferencesApi(StatelessApi):
    @extend_schema(responses={200: PreferencesSerializer, **errors(401)})
    def get(self, request: Request) -> Response:
        """Return the catalog categories you follow."""
        return Response(selectors.preferences_get(user_id=self.user_id))

    @extend_schema(
        request=PreferencesSerializer, responses={200: PreferencesSerializer, **errors(401)}
    )
    def put(self, request: Request) -> Response:
        """Set the catalog categories your feed follows."""
        serializer = PreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(services.preferences_set(user_id=self.user_id, **serializer.validated_data))


class FeedApi(StatelessApi):
    @extend_schema(responses={200: FeedSerializer, **errors(401)})
    def get(self, request: Request) -> Response:
        """Return your feed: followed categories, your draft count, their newest products."""
        return Response(selectors.feed(user_id=self.user_id))


# --- drafts ---------------------------------------------------------------------------------------

IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, description="The draft's ETag; 412 when stale."
)
IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER, str, OpenApiParameter.HEADER, description="Retry-safe create (24 h)."
)
DRAFT_ETAG = header("ETag", "The draft's version: send it as If-Match.", 200, 201)


def draft_response(draft: dict[str, Any], status_code: int = status.HTTP_200_OK) -> Response:
    """Return a draft with its ETag (and, when just created, its Location)."""
    headers = {"ETag": selectors.draft_etag(draft)}
    if status_code == status.HTTP_201_CREATED:
        headers["Location"] = reverse("sessions_demo-api:draft-detail", args=[draft["id"]])
    return Response(draft, status=status_code, headers=headers)


def if_match(request: Request) -> list[str] | None:
    """Return the ETags of the If-Match header (["*"] for any), None when there is none."""
    header = request.headers.get("If-Match")
    return parse_etags(header) if header is not None else None


class DraftListApi(StatelessApi):
    @extend_schema(responses={200: DraftSummarySerializer(many=True), **errors(401)})
    def get(self, request: Request) -> Response:
        """List your drafts (without bodies), most recently changed first."""
        return Response(selectors.draft_list(user_id=self.user_id))

    @extend_schema(
        parameters=[
            IDEMPOTENCY_KEY,
            DRAFT_ETAG,
            header("Location", "The new draft.", 201),
            header("Idempotent-Replayed", "true on an Idempotency-Key retry.", 200, 201),
        ],
        request=DraftSerializer,
        responses={
            200: OpenApiResponse(
                DraftSerializer, "A retry: the first answer (Idempotent-Replayed)."
            ),
            201: DraftSerializer,
            **errors(401, 409, 410, 413, 422),
        },
    )
    def post(self, request: Request) -> Response:
        """Create a draft; with an Idempotency-Key, a retry returns the first answer again."""
        serializer = DraftSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get(idempotency.HEADER)
        claim = None
        if key is not None:
            request_fingerprint = idempotency.fingerprint("POST", request.path, request.data)
            claim, done = idempotency.claim(
                user_id=self.user_id, key=key, request_fingerprint=request_fingerprint
            )
            if done is not None:
                if not selectors.draft_exists(user_id=self.user_id, draft_id=done["body"]["id"]):
                    raise IdempotencyReplayGone()
                response = draft_response(done["body"], done["status"])
                response["Idempotent-Replayed"] = "true"
                return response
        try:
            draft = services.draft_create(
                user_id=self.user_id, claim=claim, **serializer.validated_data
            )
        except (exceptions.APIException, redis.RedisError):
            if claim is not None:
                # Nothing was stored (or, after a Redis error, perhaps it was: release checks).
                with contextlib.suppress(redis.RedisError):
                    idempotency.release(claim)
            raise
        return draft_response(draft, status.HTTP_201_CREATED)


DRAFT_WRITE = {200: DraftSerializer, **errors(401, 409, 412, 413)}
DRAFT_WRITE_PARAMS = [IF_MATCH, DRAFT_ETAG]


class DraftDetailApi(StatelessApi):
    @extend_schema(responses={200: DraftSerializer, **errors(401)}, parameters=[DRAFT_ETAG])
    def get(self, request: Request, draft_id: str) -> Response:
        """Return one of your drafts, with its version as ETag."""
        return draft_response(selectors.draft_get(user_id=self.user_id, draft_id=draft_id))

    @extend_schema(parameters=DRAFT_WRITE_PARAMS, request=DraftSerializer, responses=DRAFT_WRITE)
    def put(self, request: Request, draft_id: str) -> Response:
        """Replace a draft's title and body."""
        return self._update(request, draft_id, partial=False)

    @extend_schema(parameters=DRAFT_WRITE_PARAMS, request=DraftSerializer, responses=DRAFT_WRITE)
    def patch(self, request: Request, draft_id: str) -> Response:
        """Change a draft's title or body."""
        return self._update(request, draft_id, partial=True)

    @extend_schema(parameters=[IF_MATCH], responses={204: None, **errors(401, 409, 412)})
    def delete(self, request: Request, draft_id: str) -> Response:
        """Delete a draft."""
        services.draft_delete(user_id=self.user_id, draft_id=draft_id, if_match=if_match(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, draft_id: str, *, partial: bool) -> Response:
        serializer = DraftSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        draft = services.draft_update(
            user_id=self.user_id,
            draft_id=draft_id,
            changes=serializer.validated_data,
            if_match=if_match(request),
        )
        return draft_response(draft)


# --- public key -----------------------------------------------------------------------------------


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """Publish the public key that verifies access tokens (RS256), as a JSON Web Key Set."""
    jwt_settings = settings.SIMPLE_JWT
    if jwt_settings["ALGORITHM"] != "RS256":
        detail = (
            "Tokens are signed with a shared secret (HS256): there is no public key to publish."
        )
        return JsonResponse(error_body(detail, "not_found"), status=404)
    key = RSAAlgorithm.to_jwk(
        RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(jwt_settings["VERIFYING_KEY"]), as_dict=True
    )
    response = JsonResponse({"keys": [{**key, "use": "sig", "alg": "RS256"}]})
    patch_cache_control(response, public=True, max_age=300)
    return response
