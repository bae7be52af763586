"""Preferences and the personal feed: validated against the catalog, never shared-cacheable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Category, Product
from sessions_demo import keys

PREFERENCES = "/api/v1/me/preferences/"
FEED = "/api/v1/feed/"


@pytest.fixture
def categories(db) -> None:
    shoes = Category.objects.create(slug="shoes", name="Shoes")
    hats = Category.objects.create(slug="hats", name="Hats")
    Category.objects.create(slug="bags", name="Bags")
    for number, category in enumerate([shoes, hats, shoes]):
        Product.objects.create(
            sku=f"SKU-{number}",
            slug=f"product-{number}",
            name=f"Product {number}",
            price=Decimal("10.00"),
            category=category,
        )


def test_preferences_start_empty_and_can_be_set(asgi, as_alice, categories):
    empty = asgi.get(PREFERENCES, headers=as_alice)
    put = asgi.request(
        "PUT", PREFERENCES, json={"categories": ["shoes", "hats", "shoes"]}, headers=as_alice
    )
    read = asgi.get(PREFERENCES, headers=as_alice)

    assert empty.json() == {"categories": []}
    assert put.status_code == 200
    assert put.json() == {"categories": ["shoes", "hats"]}
    assert read.json() == {"categories": ["shoes", "hats"]}
    assert read.headers["cache-control"] == "private, no-store"


def test_preferences_are_kept_in_redis(asgi, as_alice, alice, categories, redis_client):
    asgi.request("PUT", PREFERENCES, json={"categories": ["bags"]}, headers=as_alice)

    assert redis_client.get(keys.preferences(str(alice.pk))) == b'{"categories": ["bags"]}'


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"categories": ["shoes", "nope", "gone"]},
            {"categories": ["Unknown categories: gone, nope."]},
        ),
        (
            {"categories": ["Not a slug!"]},
            {
                "categories": {
                    "0": [
                        'Enter a valid "slug" consisting of letters, numbers, underscores '
                        "or hyphens."
                    ]
                }
            },
        ),
        ({"categories": "shoes"}, {"categories": ['Expected a list of items but got type "str".']}),
    ],
)
def test_unknown_or_malformed_categories_are_a_400(asgi, as_alice, categories, body, errors):
    response = asgi.request("PUT", PREFERENCES, json=body, headers=as_alice)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "code": "invalid", "errors": errors}
    assert asgi.get(PREFERENCES, headers=as_alice).json() == {"categories": []}


def test_the_feed_has_followed_categories_draft_count_and_their_newest_products(
    asgi, as_alice, categories
):
    asgi.request("PUT", PREFERENCES, json={"categories": ["shoes"]}, headers=as_alice)
    asgi.post("/api/v1/drafts/", json={"title": "a"}, headers=as_alice)
    asgi.post("/api/v1/drafts/", json={"title": "b"}, headers=as_alice)

    response = asgi.get(FEED, headers=as_alice)

    assert response.status_code == 200
    feed = response.json()
    assert feed["categories"] == ["shoes"]
    assert feed["draft_count"] == 2
    assert [p["slug"] for p in feed["products"]] == ["product-2", "product-0"]
    assert {p["category"] for p in feed["products"]} == {"shoes"}


def test_the_feed_of_a_new_user_is_empty(asgi, as_bob, db):
    response = asgi.get(FEED, headers=as_bob)

    assert response.json() == {"categories": [], "draft_count": 0, "products": []}


def test_the_feed_is_never_kept_by_a_shared_cache(asgi, as_alice, categories):
    response = asgi.get(FEED, headers=as_alice)

    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["vary"] == "Authorization"


def test_the_feed_needs_a_token(asgi, db):
    assert asgi.get(FEED).status_code == 401
