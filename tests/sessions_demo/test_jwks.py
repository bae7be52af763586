"""RS256: a server signs with a private key file and publishes the public key as a JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sessions_demo.conftest import PASSWORD, bearer, make_user
from tests.sessions_demo.servers import daphne_servers

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_key_pair(directory) -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "private.pem").write_bytes(private_pem)
    (directory / "public.pem").write_bytes(public_pem)
    return str(directory), public_pem


def test_tokens_verify_with_the_published_public_key_alone(tmp_path, redis_client):
    make_user("alice")
    keys_dir, public_pem = write_key_pair(tmp_path)
    rs256 = {
        "JWT_ALGORITHM": "RS256",
        "JWT_PRIVATE_KEY_FILE": f"{keys_dir}/private.pem",
        "JWT_PUBLIC_KEY_FILE": f"{keys_dir}/public.pem",
    }

    with daphne_servers(1, tmp_path, **rs256) as (server,), httpx.Client(timeout=10) as http:
        jwks = http.get(f"{server}/.well-known/jwks.json")
        login = http.post(
            f"{server}/api/v1/auth/token/", json={"username": "alice", "password": PASSWORD}
        )
        access = login.json()["access"]
        me = http.get(f"{server}/api/v1/me/", headers=bearer(access))

        # The classic algorithm confusion: HS256 "signed" with the public key as the secret.
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = access.split(".")[1]
        mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        confused = http.get(
            f"{server}/api/v1/me/", headers=bearer(f"{header}.{payload}.{b64(mac)}")
        )

    assert jwks.status_code == 200
    assert jwks.headers["cache-control"] == "public, max-age=300"
    (jwk,) = jwks.json()["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in jwk  # the public half only
    claims = jwt.decode(
        access,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience="stateless-cacheable-api",
        issuer="stateless-cacheable",
    )
    assert claims["username"] == "alice"
    assert me.status_code == 200
    assert confused.status_code == 401
    assert confused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
