"""Edge authentication: a JWT is verified once, at the gateway, before any view runs."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from gateway.asgi import Gateway
from gateway.auth import CLAIMS_KEY
from sessions_demo import tokens
from tests.gateway.conftest import client_for

INVALID_TOKEN = 'Bearer error="invalid_token"'


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="x")


@pytest.fixture
def alice_access(alice) -> str:
    return tokens.token_pair_for(alice)["access"]


def call_gateway(origin, **request):
    async def send():
        async with client_for(Gateway(origin)) as client:
            return await client.get("/api/v1/something/", **request)

    return async_to_sync(send)()


def test_an_invalid_token_is_refused_before_any_view_runs(origin):
    response = call_gateway(origin, headers={"Authorization": "Bearer not.a.jwt"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert response.json()["code"] == "token_not_valid"
    assert origin.calls == []


def test_a_valid_token_reaches_the_app_with_its_claims(origin, alice, alice_access, monkeypatch):
    seen = []

    async def app(scope, receive, send):
        seen.append(scope[CLAIMS_KEY])
        await origin(scope, receive, send)

    call_gateway(app, headers={"Authorization": f"Bearer {alice_access}"})

    assert seen[0]["user_id"] == str(alice.id)
    assert (seen[0]["username"], seen[0]["is_staff"]) == ("alice", False)


def test_no_token_passes_as_anonymous(origin):
    response = call_gateway(origin)

    assert response.status_code == 200
    assert len(origin.calls) == 1


def test_two_credentials_are_a_400(origin, alice_access):
    headers = [("Authorization", f"Bearer {alice_access}"), ("Authorization", "Bearer forged")]

    response = call_gateway(origin, headers=headers)

    assert response.status_code == 400
    assert response.json()["code"] == "multiple_credentials"
    assert origin.calls == []


def test_django_reuses_the_edge_verified_claims(asgi, alice_access, monkeypatch):
    verifications = []
    real = tokens.access_token_claims

    def counted(raw_token):
        verifications.append(raw_token)
        return real(raw_token)

    monkeypatch.setattr("gateway.auth.access_token_claims", counted)
    monkeypatch.setattr("sessions_demo.authentication.access_token_claims", counted)

    response = asgi.get("/api/v1/me/", headers={"Authorization": f"Bearer {alice_access}"})

    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert len(verifications) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ["?token=garbage", ""])
async def test_a_websocket_with_a_bad_token_is_closed_before_it_is_accepted(query, origin):
    communicator = WebsocketCommunicator(
        Gateway(origin),
        f"/ws/quotes/{query}",
        subprotocols=[] if query else ["bearer", "garbage"],
    )

    connected, code = await communicator.connect()

    assert (connected, code) == (False, 4401)
    assert origin.calls == []


@pytest.mark.asyncio
async def test_websocket_connections_count_against_the_connect_policy(origin, settings):
    settings.GATEWAY = {
        **settings.GATEWAY,
        "RATES": {**settings.GATEWAY["RATES"], "connect": "1/min"},
    }

    async def accept(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})

    first = WebsocketCommunicator(Gateway(accept), "/ws/quotes/")
    second = WebsocketCommunicator(Gateway(accept), "/ws/quotes/")

    assert (await first.connect())[0] is True
    assert await second.connect() == (False, 4429)
    await first.disconnect()
