"""HTTP caching of catalog reads: headers, and the conditional-request matrix of RFC 9110."""

from datetime import timedelta

import pytest
from django.utils.http import http_date

from tests.catalog.factories import make_product

CACHE_CONTROL = "max-age=60, s-maxage=3600, stale-while-revalidate=60, stale-if-error=86400"
CACHING_HEADERS = ("etag", "last-modified", "cache-control")

pytestmark = pytest.mark.django_db


def url(product) -> str:
    return f"/api/v1/products/{product.id}/"


def test_a_product_carries_every_caching_header(asgi, product):
    response = asgi.get(url(product))

    assert response.status_code == 200
    assert response.headers["etag"] == f'"product-{product.id}-v1"'
    assert response.headers["last-modified"] == http_date(product.updated_at.timestamp())
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert response.headers["cache-tag"] == f"product:{product.id}, category:shoes"
    assert "vary" not in response.headers  # the same bytes for everybody: one shared-cache entry
    assert response.json()["price"] == "19.99"


def test_cache_control_comes_from_settings(asgi, product, settings):
    settings.CATALOG = {"BROWSER_MAX_AGE": 5, "SHARED_MAX_AGE": 600}

    response = asgi.get(url(product))

    assert response.headers["cache-control"] == (
        "max-age=5, s-maxage=600, stale-while-revalidate=60, stale-if-error=86400"
    )


@pytest.mark.parametrize(
    "if_none_match",
    [
        '"product-{id}-v1"',
        'W/"product-{id}-v1"',  # If-None-Match compares weakly
        '"other", "product-{id}-v1"',
        "*",
    ],
)
def test_if_none_match_that_matches_gives_304_with_the_200s_headers(asgi, product, if_none_match):
    full = asgi.get(url(product))

    response = asgi.get(
        url(product), headers={"If-None-Match": if_none_match.format(id=product.id)}
    )

    assert response.status_code == 304
    assert response.content == b""
    assert {h: response.headers.get(h) for h in CACHING_HEADERS} == {
        h: full.headers[h] for h in CACHING_HEADERS
    }


@pytest.mark.parametrize("if_none_match", ['"product-1-v0"', "garbage", '"unterminated'])
def test_if_none_match_that_does_not_match_gives_the_full_response(asgi, product, if_none_match):
    response = asgi.get(url(product), headers={"If-None-Match": if_none_match})

    assert response.status_code == 200
    assert response.json()["id"] == product.id


def test_if_none_match_wins_over_if_modified_since(asgi, product):
    future = http_date((product.updated_at + timedelta(days=1)).timestamp())

    response = asgi.get(
        url(product), headers={"If-None-Match": '"stale"', "If-Modified-Since": future}
    )

    assert response.status_code == 200


def test_if_modified_since_alone_gives_304_when_unchanged(asgi, product):
    response = asgi.get(
        url(product), headers={"If-Modified-Since": http_date(product.updated_at.timestamp() + 1)}
    )

    assert response.status_code == 304
    assert response.headers["etag"] == f'"product-{product.id}-v1"'


def test_if_modified_since_before_the_change_gives_200(asgi, product):
    earlier = http_date((product.updated_at - timedelta(hours=1)).timestamp())

    response = asgi.get(url(product), headers={"If-Modified-Since": earlier})

    assert response.status_code == 200


def test_head_has_the_headers_and_no_body(asgi, product):
    response = asgi.head(url(product))

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["etag"] == f'"product-{product.id}-v1"'
    assert response.headers["cache-control"] == CACHE_CONTROL


def test_conditional_head_gives_304(asgi, product):
    response = asgi.head(url(product), headers={"If-None-Match": f'"product-{product.id}-v1"'})

    assert response.status_code == 304


def test_a_get_with_a_stale_if_match_is_a_json_412(asgi, product):
    response = asgi.get(url(product), headers={"If-Match": '"product-1-v99"'})

    assert response.status_code == 412
    assert response.json()["code"] == "precondition_failed"
    assert response.headers["etag"] == f'"product-{product.id}-v1"'


def test_the_list_etag_answers_304_and_moves_with_any_change(
    asgi, product, django_capture_on_commit_callbacks
):
    first = asgi.get("/api/v1/products/")
    unchanged = asgi.get("/api/v1/products/", headers={"If-None-Match": first.headers["etag"]})
    with django_capture_on_commit_callbacks(execute=True):
        make_product(category=product.category)
    after_create = asgi.get("/api/v1/products/", headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200
    assert first.headers["cache-tag"] == "products"
    assert unchanged.status_code == 304
    assert unchanged.headers["cache-control"] == CACHE_CONTROL
    assert after_create.status_code == 200
    assert after_create.headers["etag"] != first.headers["etag"]
    assert after_create.json()["count"] == 2


def test_the_list_etag_moves_when_a_product_is_updated(
    asgi, product, django_capture_on_commit_callbacks
):
    before = asgi.get("/api/v1/products/").headers["etag"]
    with django_capture_on_commit_callbacks(execute=True):
        product.stock = 99
        product.save()

    after = asgi.get("/api/v1/products/").headers["etag"]

    assert after != before


def test_filtered_lists_have_their_own_etag_and_tag(asgi, product):
    make_product()  # in another category

    shoes = asgi.get("/api/v1/products/", params={"category": "shoes"})
    everything = asgi.get("/api/v1/products/")

    assert [item["sku"] for item in shoes.json()["results"]] == ["SKU-SHOE-1"]
    assert shoes.headers["cache-tag"] == "products, category:shoes"
    assert shoes.headers["etag"] != everything.headers["etag"]


def test_page_size_is_capped(asgi, shoes, settings):
    settings.CATALOG = {"MAX_PAGE_SIZE": 3}
    for _ in range(5):
        make_product(category=shoes)

    response = asgi.get("/api/v1/products/", params={"page_size": 1000})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 3
    assert response.json()["count"] == 5


def test_categories_list_counts_products_and_is_cacheable(asgi, product):
    response = asgi.get("/api/v1/categories/")
    again = asgi.get("/api/v1/categories/", headers={"If-None-Match": response.headers["etag"]})

    assert response.json() == [{"slug": "shoes", "name": "Shoes", "product_count": 1}]
    assert response.headers["cache-tag"] == "categories"
    assert again.status_code == 304
