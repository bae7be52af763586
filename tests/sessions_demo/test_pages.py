"""The demo pages and their script, the gateway's seam for verified claims, JWKS under HS256."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import async_to_sync


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


def test_claims_the_gateway_verified_are_used_without_a_second_check(db):
    from config.asgi import application

    claims = {"user_id": "42", "username": "edge", "is_staff": False, "jti": "j" * 32}

    async def with_claims(scope, receive, send):
        await application({**scope, "auth_claims": claims}, receive, send)

    async def get_me() -> httpx.Response:
        transport = httpx.ASGITransport(app=with_claims)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/api/v1/me/")

    response = async_to_sync(get_me)()

    assert response.status_code == 200
    assert response.json() == {"id": "42", "username": "edge", "is_staff": False}
