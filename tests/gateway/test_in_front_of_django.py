"""The gateway in front of the real apps: hits skip Django, saves purge, failures serve stale."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError

from catalog import api as catalog_api
from catalog import selectors
from sessions_demo.tokens import token_pair_for
from tests.catalog.factories import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def product():
    return make_product(price=Decimal("10.00"))


@pytest.fixture
def gateway_clock(monkeypatch):
    """Move the gateway cache's clock by hand."""
    from config.asgi import application

    now = {"t": 1_800_000_000.0}
    monkeypatch.setattr(application.response_cache, "clock", lambda: now["t"])
    return now


def test_a_hit_runs_no_view_and_no_query(asgi, product, monkeypatch, django_assert_num_queries):
    url = f"/api/v1/products/{product.id}/"
    asgi.get(url)
    views = []
    real_get = catalog_api.ProductDetailApi.get
    monkeypatch.setattr(
        catalog_api.ProductDetailApi, "get", lambda *a, **k: views.append(1) or real_get(*a, **k)
    )

    with django_assert_num_queries(0):
        response = asgi.get(url)

    assert response.headers["x-cache"] == "HIT"
    assert views == []


def test_a_save_purges_the_gateway_so_the_next_read_is_fresh(
    asgi, product, django_capture_on_commit_callbacks
):
    url = f"/api/v1/products/{product.id}/"
    asgi.get(url)
    assert asgi.get(url).headers["x-cache"] == "HIT"

    with django_capture_on_commit_callbacks(execute=True):
        product.price = Decimal("12.00")
        product.save()
    after = asgi.get(url)

    assert (after.headers["x-cache"], after.json()["price"]) == ("MISS", "12.00")


def test_when_the_view_fails_the_stale_copy_is_served(asgi, product, monkeypatch, gateway_clock):
    url = f"/api/v1/products/{product.id}/"
    asgi.get(url)
    gateway_clock["t"] += 3600 + 60 + 1  # past s-maxage and stale-while-revalidate

    def database_down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(selectors, "product_get", database_down)
    response = asgi.get(url)

    assert (response.status_code, response.headers["x-cache"]) == (200, "STALE")
    assert response.json()["price"] == "10.00"


def test_a_private_response_is_never_served_to_another_user(asgi):
    users = get_user_model().objects
    alice = token_pair_for(users.create_user("alice", password="x"))["access"]
    bob = token_pair_for(users.create_user("bob", password="x"))["access"]

    as_alice = asgi.get("/api/v1/me/", headers={"Authorization": f"Bearer {alice}"})
    as_bob = asgi.get("/api/v1/me/", headers={"Authorization": f"Bearer {bob}"})

    assert as_alice.json()["username"] == "alice"
    assert as_bob.json()["username"] == "bob"
    assert as_bob.headers["x-cache"] == "BYPASS"
