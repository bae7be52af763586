"""The HTML pages: server-rendered, with the same caching headers and 304s as the API."""

import pytest

from tests.catalog.factories import make_product

pytestmark = pytest.mark.django_db


def test_the_catalog_page_lists_products_and_categories(asgi, product):
    response = asgi.get("/catalog/")

    assert response.status_code == 200
    assert "Trail Runner" in response.text
    assert 'href="?category=shoes"' in response.text
    assert "data-cache-panel" in response.text
    assert response.headers["cache-tag"] == "products, categories"
    assert response.headers["cache-control"].startswith("max-age=60, s-maxage=3600")


def test_the_catalog_page_filters_by_category_and_paginates(asgi, shoes, settings):
    settings.CATALOG = {"PAGE_SIZE": 2}
    for number in range(3):
        make_product(category=shoes, name=f"Shoe {number}")
    make_product(name="Not a shoe")

    first = asgi.get("/catalog/", params={"category": "shoes"})
    second = asgi.get("/catalog/", params={"category": "shoes", "page": 2})

    assert ("Shoe 0" in first.text, "Shoe 2" in first.text) == (True, False)
    assert "Shoe 2" in second.text
    assert "Not a shoe" not in first.text + second.text
    assert "Page 1 of 2" in first.text


@pytest.mark.parametrize("category", ["nope", "sho\u0000es"])
def test_an_unknown_category_is_a_404_page(asgi, product, category):
    response = asgi.get("/catalog/", params={"category": category})

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_the_product_page_shows_the_product_and_answers_304(asgi, product):
    page = asgi.get("/catalog/trail-runner/")
    again = asgi.get("/catalog/trail-runner/", headers={"If-None-Match": page.headers["etag"]})

    assert page.status_code == 200
    assert "<h1>Trail Runner</h1>" in page.text
    assert page.headers["cache-tag"] == f"product:{product.id}, category:shoes"
    assert again.status_code == 304
    assert again.headers["etag"] == page.headers["etag"]


def test_renaming_the_category_changes_the_product_pages_etag(
    asgi, product, django_capture_on_commit_callbacks
):
    before = asgi.get("/catalog/trail-runner/").headers["etag"]
    with django_capture_on_commit_callbacks(execute=True):
        product.category.name = "Footwear"
        product.category.save()

    after = asgi.get("/catalog/trail-runner/")

    assert after.headers["etag"] != before
    assert "Footwear" in after.text


def test_an_unknown_product_page_is_a_404(asgi):
    assert asgi.get("/catalog/no-such-product/").status_code == 404
