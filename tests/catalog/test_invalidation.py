"""One save invalidates every layer: admin, API, shell and bulk changes alike."""

from decimal import Decimal

import pytest
from django.urls import reverse

from catalog import services
from gateway import purge
from tests.catalog.factories import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def purged_tags(monkeypatch) -> list[str]:
    """Record what reaches the gateway's purge hook, and let it purge."""
    calls: list[str] = []
    real_purge = purge.tags

    def recording_purge(tags: list[str]) -> int:
        calls.extend(tags)
        return real_purge(tags)

    monkeypatch.setattr(purge, "tags", recording_purge)
    return calls


def read_price(asgi, product) -> str:
    return asgi.get(f"/api/v1/products/{product.id}/").json()["price"]


def test_an_admin_edit_shows_on_the_next_read(
    asgi, admin_client, product, purged_tags, django_capture_on_commit_callbacks
):
    assert read_price(asgi, product) == "19.99"  # cached now
    form = {
        "sku": product.sku, "slug": product.slug, "name": product.name, "description": "",
        "price": "42.00", "currency": "EUR", "stock": 5, "category": product.category.id,
    }  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:catalog_product_change", args=[product.id]), form
        )

    assert response.status_code == 302
    assert read_price(asgi, product) == "42.00"
    assert purged_tags == [f"product:{product.id}", "products"]


def test_an_api_edit_shows_on_the_next_read(
    asgi, staff_client, product, django_capture_on_commit_callbacks
):
    assert read_price(asgi, product) == "19.99"

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.patch(
            f"/api/v1/products/{product.id}/",
            json={"price": "5.00"},
            headers={"If-Match": f'"product-{product.id}-v1"'},
        )

    assert read_price(asgi, product) == "5.00"


def test_a_shell_save_shows_on_the_next_read(asgi, product, django_capture_on_commit_callbacks):
    assert read_price(asgi, product) == "19.99"

    with django_capture_on_commit_callbacks(execute=True):
        product.price = Decimal("7.25")
        product.save()

    assert read_price(asgi, product) == "7.25"
    assert asgi.get(f"/api/v1/products/{product.id}/").headers["etag"] == (
        f'"product-{product.id}-v2"'
    )


def test_a_delete_shows_on_the_next_read(
    asgi, product, purged_tags, django_capture_on_commit_callbacks
):
    product_id = product.id
    assert read_price(asgi, product) == "19.99"

    with django_capture_on_commit_callbacks(execute=True):
        product.delete()

    assert asgi.get(f"/api/v1/products/{product_id}/").status_code == 404
    assert purged_tags == [f"product:{product_id}", "products"]


def test_a_write_leaves_the_other_products_of_its_category_cached(
    asgi, shoes, purged_tags, django_capture_on_commit_callbacks
):
    written, sibling = make_product(category=shoes), make_product(category=shoes)
    for product in (written, sibling):
        read_price(asgi, product)  # both in the gateway's cache now

    with django_capture_on_commit_callbacks(execute=True):
        written.price = Decimal("1.00")
        written.save()

    reads = [asgi.get(f"/api/v1/products/{p.id}/") for p in (written, sibling)]
    assert [r.headers["x-cache"] for r in reads] == ["MISS", "HIT"]
    assert reads[0].json()["price"] == "1.00"


def test_nothing_is_invalidated_before_the_commit(
    asgi, product, purged_tags, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as pending:
        product.price = Decimal("1.00")
        product.save()

    assert purged_tags == []
    assert len(pending) == 1


def test_a_bulk_reprice_invalidates_every_product_it_touched(
    asgi, shoes, purged_tags, django_capture_on_commit_callbacks
):
    first = make_product(category=shoes, price=Decimal("10.00"))
    second = make_product(category=shoes, price=Decimal("20.00"))
    untouched = make_product(price=Decimal("30.00"))
    for product in (first, second, untouched):
        read_price(asgi, product)

    with django_capture_on_commit_callbacks(execute=True):
        touched = services.products_reprice(category_slug="shoes", percent=Decimal("10"))

    assert sorted(touched) == [first.id, second.id]
    assert [read_price(asgi, p) for p in (first, second, untouched)] == ["11.00", "22.00", "30.00"]
    assert sorted(purged_tags) == sorted(
        [f"product:{first.id}", f"product:{second.id}", "products"]
    )


def test_version_is_bumped_by_every_save(product):
    product.stock = 1
    product.save()
    product.stock = 2
    product.save(update_fields=["stock"])

    product.refresh_from_db()
    assert product.version == 3
