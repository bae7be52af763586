"""Writes: staff only, If-Match required (428) and checked (412), bad input refused (400)."""

import json
from decimal import Decimal

import pytest

from catalog.models import Product

pytestmark = pytest.mark.django_db


def url(product) -> str:
    return f"/api/v1/products/{product.id}/"


def etag(product) -> str:
    return f'"product-{product.id}-v{product.version}"'


def test_an_update_without_if_match_is_refused_with_428(staff_client, product):
    response = staff_client.patch(url(product), json={"stock": 1})

    assert response.status_code == 428
    assert response.json()["code"] == "precondition_required"
    product.refresh_from_db()
    assert product.stock == 5


def test_an_update_with_the_current_etag_applies_and_returns_the_new_one(
    staff_client, asgi, product
):
    response = staff_client.patch(
        url(product), json={"price": "24.50"}, headers={"If-Match": etag(product)}
    )

    assert response.status_code == 200
    assert response.headers["etag"] == f'"product-{product.id}-v2"'
    assert response.json()["price"] == "24.50"
    assert response.json()["version"] == 2


def test_the_second_of_two_writers_with_the_same_etag_gets_412_and_the_current_etag(
    staff_client, product
):
    read_etag = etag(product)
    first = staff_client.patch(url(product), json={"stock": 10}, headers={"If-Match": read_etag})

    second = staff_client.patch(url(product), json={"stock": 20}, headers={"If-Match": read_etag})

    assert first.status_code == 200
    assert second.status_code == 412
    assert second.json()["code"] == "precondition_failed"
    assert second.headers["etag"] == f'"product-{product.id}-v2"'
    product.refresh_from_db()
    assert product.stock == 10  # the first update was not lost


@pytest.mark.parametrize("if_match", ['W/"product-{id}-v1"', "not-an-etag", '"product-{id}-v7"'])
def test_weak_malformed_or_stale_if_match_is_412(staff_client, product, if_match):
    response = staff_client.put(
        url(product),
        json={
            "sku": "X-1",
            "slug": "x-1",
            "name": "X",
            "price": "1.00",
            "stock": 1,
            "category": "shoes",
        },
        headers={"If-Match": if_match.format(id=product.id)},
    )

    assert response.status_code == 412
    product.refresh_from_db()
    assert (product.sku, product.version) == ("SKU-SHOE-1", 1)


def test_if_match_star_accepts_any_current_version(staff_client, product):
    response = staff_client.patch(url(product), json={"stock": 0}, headers={"If-Match": "*"})

    assert response.status_code == 200
    assert response.json()["stock"] == 0


def test_anonymous_writes_are_401(asgi, product):
    response = asgi.patch(url(product), json={"stock": 1}, headers={"If-Match": etag(product)})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_non_staff_writes_are_403(customer_client, product):
    response = customer_client.patch(
        url(product), json={"stock": 1}, headers={"If-Match": etag(product)}
    )

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_create_returns_201_with_etag_and_location(staff_client, shoes):
    body = {
        "sku": "NEW-1",
        "slug": "new-one",
        "name": "New",
        "price": "9.90",
        "stock": 3,
        "category": "shoes",
    }

    response = staff_client.post("/api/v1/products/", json=body)

    assert response.status_code == 201
    created = Product.objects.get(sku="NEW-1")
    assert response.headers["location"] == f"/api/v1/products/{created.id}/"
    assert response.headers["etag"] == f'"product-{created.id}-v1"'
    assert created.price == Decimal("9.90")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "-1.00"}, "price"),
        ({"sku": "SKU-SHOE-1"}, "sku"),
        ({"category": "no-such-category"}, "category"),
        # No slug holds a NUL or a lone surrogate; PostgreSQL refuses a NUL in a query outright.
        ({"category": "sho\u0000es"}, "category"),
        ({"category": "sho\ud800es"}, "category"),
        ({"price": "abc"}, "price"),
        ({"currency": "euros"}, "currency"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_input_is_a_400_with_field_errors_and_nothing_saved(staff_client, product, body, field):
    valid = {
        "sku": "NEW-2",
        "slug": "new-two",
        "name": "New",
        "price": "9.90",
        "stock": 1,
        "category": "shoes",
    }

    # As JSON escapes (json.dumps's ASCII): a lone surrogate has no UTF-8 encoding of its own.
    response = staff_client.post(
        "/api/v1/products/",
        content=json.dumps({**valid, **body}),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    assert Product.objects.count() == 1


def test_a_body_that_is_not_json_is_a_400(staff_client, product):
    response = staff_client.patch(
        url(product),
        content=b"{not json",
        headers={"If-Match": etag(product), "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_delete_needs_the_current_etag_and_then_the_product_is_gone(staff_client, asgi, product):
    stale = staff_client.delete(url(product), headers={"If-Match": '"product-1-v0"'})
    deleted = staff_client.delete(url(product), headers={"If-Match": etag(product)})

    assert stale.status_code == 412
    assert deleted.status_code == 204
    assert asgi.get(url(product)).status_code == 404


@pytest.mark.parametrize(
    "path", ["/api/v1/products/999/", "/api/v1/products/abc/", f"/api/v1/products/{2**70}/"]
)
def test_unknown_or_impossible_ids_are_json_404s(asgi, path):
    response = asgi.get(path)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_writes_to_an_unknown_id_are_404(staff_client):
    response = staff_client.patch(
        "/api/v1/products/999/", json={"stock": 1}, headers={"If-Match": "*"}
    )

    assert response.status_code == 404


def test_a_staff_jwt_may_write(asgi, product):
    from django.contrib.auth import get_user_model

    from sessions_demo.tokens import token_pair_for

    staff = get_user_model().objects.create_user("editor", password="x", is_staff=True)
    token = token_pair_for(staff)["access"]

    response = asgi.patch(
        url(product),
        json={"stock": 42},
        headers={"Authorization": f"Bearer {token}", "If-Match": etag(product)},
    )

    assert response.status_code == 200
    assert response.json()["stock"] == 42


def test_a_non_staff_jwt_may_not_write(asgi, product):
    from django.contrib.auth import get_user_model

    from sessions_demo.tokens import token_pair_for

    token = token_pair_for(get_user_model().objects.create_user("reader", password="x"))["access"]

    response = asgi.patch(
        url(product),
        json={"stock": 42},
        headers={"Authorization": f"Bearer {token}", "If-Match": etag(product)},
    )

    assert response.status_code == 403
