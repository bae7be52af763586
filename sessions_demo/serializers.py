"""Input and output shapes of the sessions_demo API."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from sessions_demo.conf import sessions_setting
from sessions_demo.tokens import refresh_token_for


class TokenObtainSerializer(TokenObtainPairSerializer):
    """Check username and password; return a token pair carrying username and is_staff."""

    @classmethod
    def get_token(cls, user: AbstractUser) -> RefreshToken:  # type: ignore[override]  # simplejwt's hint admits a TokenUser; validate() passes the User it found
        return refresh_token_for(user)


class TokenPairSerializer(serializers.Serializer[dict[str, Any]]):
    access = serializers.CharField(read_only=True)
    refresh = serializers.CharField(read_only=True)


class RefreshSerializer(serializers.Serializer[dict[str, Any]]):
    refresh = serializers.CharField()


class VerifySerializer(serializers.Serializer[dict[str, Any]]):
    token = serializers.CharField()


class RegisterSerializer(serializers.ModelSerializer[AbstractUser]):
    """A new account: username checked as Django does, password by AUTH_PASSWORD_VALIDATORS."""

    id = serializers.CharField(read_only=True)  # as the token's user_id claim spells it
    password = serializers.CharField(write_only=True, trim_whitespace=False)

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "password"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = get_user_model()(username=attrs["username"])
        try:
            validate_password(attrs["password"], user=user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class MeSerializer(serializers.Serializer[TokenUser]):
    id = serializers.CharField()
    username = serializers.CharField()
    is_staff = serializers.BooleanField()


class PreferencesSerializer(serializers.Serializer[dict[str, Any]]):
    categories = serializers.ListField(child=serializers.SlugField(max_length=64))

    def validate_categories(self, value: list[str]) -> list[str]:
        limit = sessions_setting("MAX_FOLLOWED_CATEGORIES")
        if len(value) > limit:
            raise serializers.ValidationError(f"Follow at most {limit} categories.")
        return value


class DraftSerializer(serializers.Serializer[dict[str, Any]]):
    """A draft as the API shows it, and what a client may write (title, body)."""

    id = serializers.CharField(read_only=True)
    title = serializers.CharField()
    body = serializers.CharField(allow_blank=True, trim_whitespace=False, default="")
    version = serializers.IntegerField(read_only=True)
    created_at = serializers.CharField(read_only=True)
    updated_at = serializers.CharField(read_only=True)

    def validate_title(self, value: str) -> str:
        limit = sessions_setting("MAX_TITLE_LENGTH")
        if len(value) > limit:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {limit} characters."
            )
        return value


class DraftSummarySerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.CharField()
    title = serializers.CharField()
    version = serializers.IntegerField()
    created_at = serializers.CharField()
    updated_at = serializers.CharField()


class FeedSerializer(serializers.Serializer[dict[str, Any]]):
    categories = serializers.ListField(child=serializers.CharField())
    draft_count = serializers.IntegerField()
    products = serializers.ListField(child=serializers.DictField())
