"""The demo pages and their script, the gateway's seam for verified claims, JWKS under HS256."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from sessions_demo.authentication import JWTStatelessAuthentication


@pytest.mark.parametrize("path", ["/login/", "/drafts/", "/feed/"])
def test_each_demo_page_serves_the_page_app(asgi, db, path):
    response = asgi.get(path)

    assert response.status_code == 200
    assert '<script src="/static/sessions_demo/app.js" defer></script>' in response.text
    for view in ('id="view-login"', 'id="view-drafts"', 'id="view-feed"', 'id="conflict"'):
        assert view in response.text


def test_the_page_script_and_stylesheet_are_served(asgi):
    script = asgi.get("/static/sessions_demo/app.js")
    style = asgi.get("/static/sessions_demo/app.css")

    assert script.status_code == 200
    assert '"If-Match": current.etag' in script.text
    assert "localStorage" not in script.text.replace("never in localStorage", "")
    assert style.status_code == 200


def test_jwks_is_a_404_while_tokens_are_signed_with_a_shared_secret(asgi):
    response = asgi.get("/.well-known/jwks.json")

    assert response.status_code == 404
    assert response.json() == {
        "detail": (
            "Tokens are signed with a shared secret (HS256): there is no public key to publish."
        ),
        "code": "not_found",
    }


def test_claims_already_verified_in_the_scope_are_used_without_a_second_check(db):
    claims = {"user_id": "42", "username": "edge", "is_staff": True, "jti": "j" * 32}
    django_request = RequestFactory().get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer not-checked")
    django_request.scope = {"type": "http", "auth_claims": claims}

    user, auth = JWTStatelessAuthentication().authenticate(Request(django_request))

    assert (user.id, user.username, user.is_staff) == ("42", "edge", True)
    assert auth == claims
