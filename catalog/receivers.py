"""Signal-driven invalidation: one save or delete, wherever it comes from, clears every layer."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog import product_cache
from catalog.models import Category, Product
from gateway import purge


def invalidate_products_after_commit(product_ids: Iterable[int]) -> None:
    """Once the transaction commits, drop the products from the app cache and the shared caches."""
    product_ids = list(product_ids)

    def invalidate() -> None:
        try:
            product_cache.invalidate(product_ids)
        finally:
            # The shared caches are purged even when the app cache could not be reached.
            # Every list carries "products"; not "category:<slug>", which every product page of
            # the category also carries: one write would drop them all (make bench's Zipf).
            purge.tags([*(f"product:{product_id}" for product_id in product_ids), "products"])

    # After commit, so that no reader can refill a cache with the row that is about to change.
    transaction.on_commit(invalidate)


@receiver([post_save, post_delete], sender=Product, dispatch_uid="catalog.product_changed")
def product_changed(sender: type[Product], instance: Product, **kwargs: object) -> None:
    invalidate_products_after_commit([instance.pk])


@receiver([post_save, post_delete], sender=Category, dispatch_uid="catalog.category_changed")
def category_changed(sender: type[Category], instance: Category, **kwargs: object) -> None:
    # Products carry only their category's slug, which never changes: their entries stay valid.
    transaction.on_commit(
        lambda: purge.tags([f"category:{instance.slug}", "categories", "products"])
    )
