"""The app's Redis cache-aside: hits skip the database, no refill race, no stampede."""

import threading

import pytest
from django.db import connection

from catalog import product_cache, selectors
from catalog.models import Product
from tests.catalog.factories import make_product


@pytest.mark.django_db
def test_a_hit_reads_no_database_row(asgi, product, django_assert_num_queries):
    asgi.get(f"/api/v1/products/{product.id}/")  # the miss fills the cache

    with django_assert_num_queries(0):
        response = asgi.get(f"/api/v1/products/{product.id}/")

    assert response.status_code == 200
    assert response.json()["sku"] == "SKU-SHOE-1"


@pytest.mark.django_db
def test_a_miss_reads_the_product_once_and_fills_the_cache(product, django_assert_num_queries):
    with django_assert_num_queries(1):
        loaded = selectors.product_get(product_id=product.id)

    assert product_cache.get(product.id) == loaded.to_entry()


@pytest.mark.django_db
def test_a_conditional_hit_answers_304_without_the_database(
    asgi, product, django_assert_num_queries
):
    etag = asgi.get(f"/api/v1/products/{product.id}/").headers["etag"]

    with django_assert_num_queries(0):
        response = asgi.get(f"/api/v1/products/{product.id}/", headers={"If-None-Match": etag})

    assert response.status_code == 304


@pytest.mark.django_db
def test_a_reader_that_loaded_before_an_update_cannot_put_the_old_row_back(
    product, django_capture_on_commit_callbacks
):
    # Given a slow reader that noted the generation and read version 1 from the database...
    seen_generation = product_cache.generation(product.id)
    stale = selectors.load_product(product.id)
    # ...when an update commits and invalidates before the reader stores what it read,
    with django_capture_on_commit_callbacks(execute=True):
        product.name = "Renamed"
        product.save()
    stored = product_cache.store_if_current(product.id, seen_generation, stale.to_entry())

    # then the stale row is refused, and the next read sees the update.
    assert stale.version == 1
    assert stored is False
    assert product_cache.get(product.id) is None
    fresh = selectors.product_get(product_id=product.id)
    assert (fresh.version, fresh.data["name"]) == (2, "Renamed")


@pytest.mark.django_db
def test_a_fill_from_an_unchanged_generation_is_stored(product):
    seen_generation = product_cache.generation(product.id)

    stored = product_cache.store_if_current(
        product.id, seen_generation, selectors.load_product(product.id).to_entry()
    )

    assert stored is True
    assert product_cache.get(product.id)["version"] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_misses_load_the_product_from_the_database_once(monkeypatch):
    product = make_product()
    loads = []
    real_load = selectors.load_product
    everybody_waiting = threading.Barrier(8)

    def counted_load(product_id: int) -> selectors.CachedProduct:
        loads.append(product_id)
        return real_load(product_id)

    monkeypatch.setattr(selectors, "load_product", counted_load)
    results = []

    def read() -> None:
        everybody_waiting.wait()
        try:
            results.append(selectors.product_get(product_id=product.id).version)
        finally:
            connection.close()

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert loads == [product.id]
    assert results == [1] * 8


@pytest.mark.django_db
def test_without_redis_reads_fall_back_to_the_database(product, settings):
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }

    loaded = selectors.product_get(product_id=product.id)

    assert (loaded.id, loaded.version) == (product.id, 1)


@pytest.mark.django_db
def test_a_deleted_product_is_gone_from_the_cache(product, django_capture_on_commit_callbacks):
    selectors.product_get(product_id=product.id)

    with django_capture_on_commit_callbacks(execute=True):
        Product.objects.get(pk=product.id).delete()

    with pytest.raises(selectors.ProductNotFound):
        selectors.product_get(product_id=product.id)


@pytest.mark.django_db
def test_past_the_gateway_an_app_cache_hit_reads_no_database_row(
    asgi, product, django_assert_num_queries
):
    url = f"/api/v1/products/{product.id}/"
    asgi.get(url)  # fills both caches
    bypass_the_gateway = {"Cache-Control": "no-store"}

    with django_assert_num_queries(0):
        response = asgi.get(url, headers=bypass_the_gateway)

    assert response.headers["x-cache"] == "BYPASS"  # Django answered, from the app cache
    assert response.json()["sku"] == "SKU-SHOE-1"
