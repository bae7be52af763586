"""Writes: every change to the catalog goes through here or through Model.save (admin, shell)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Round
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from catalog.models import Product
from catalog.receivers import invalidate_products_after_commit
from catalog.selectors import ProductNotFound, product_etag


class PreconditionFailed(Exception):
    """The client's If-Match names a version that is no longer current."""

    def __init__(self, current_etag: str) -> None:
        super().__init__(current_etag)
        self.current_etag = current_etag


def if_match_holds(if_match: Iterable[str], current_etag: str) -> bool:
    """Return whether If-Match admits the current ETag (strong comparison, RFC 9110 13.1.1)."""
    return any(tag == "*" or tag == current_etag for tag in if_match)


def _locked_product(product_id: int, if_match: Iterable[str]) -> Product:
    # select_for_update on PostgreSQL; SQLite's IMMEDIATE transactions serialise writers instead.
    try:
        product = Product.objects.select_for_update().select_related("category").get(pk=product_id)
    except Product.DoesNotExist:
        raise ProductNotFound(product_id) from None
    etag = product_etag(product.id, product.version)
    if not if_match_holds(if_match, etag):
        raise PreconditionFailed(etag)
    return product


def _save_unique(product: Product) -> None:
    try:
        with transaction.atomic():
            product.save()
    except IntegrityError as exc:
        # The serializer checked uniqueness, but a concurrent write can still win the race.
        raise ValidationError({"sku": ["A product with this SKU or slug already exists."]}) from exc


@transaction.atomic
def product_create(*, data: Mapping[str, object]) -> Product:
    """Create a product from validated data."""
    product = Product(**data)
    _save_unique(product)
    return product


@transaction.atomic
def product_update(
    *, product_id: int, if_match: Iterable[str], data: Mapping[str, object]
) -> Product:
    """Apply validated changes to a product, if it is still at a version the client names."""
    product = _locked_product(product_id, if_match)
    for field, value in data.items():
        setattr(product, field, value)
    _save_unique(product)
    return product


@transaction.atomic
def product_delete(*, product_id: int, if_match: Iterable[str]) -> None:
    """Delete a product, if it is still at a version the client names."""
    _locked_product(product_id, if_match).delete()


@transaction.atomic
def products_reprice(*, category_slug: str, percent: Decimal) -> list[int]:
    """Change every price in a category by `percent`, in one statement; return the ids touched."""
    products = Product.objects.select_for_update().filter(category__slug=category_slug)
    product_ids = list(products.values_list("id", flat=True))
    # A queryset update sends no signals, so this service invalidates what it touched itself.
    Product.objects.filter(id__in=product_ids).update(
        price=Round(F("price") * (100 + percent) / 100, 2),
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    invalidate_products_after_commit(product_ids)
    return product_ids
