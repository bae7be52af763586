"""Reads: products and categories, through the app cache where it pays."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

import redis
from django.core.validators import slug_re
from django.db.models import Count, Max, QuerySet, Sum
from django_stubs_ext import WithAnnotations

from catalog import product_cache
from catalog.models import Category, Product
from catalog.serializers import ProductSerializer

logger = logging.getLogger(__name__)


MAX_ID = 2**63 - 1


class ProductNotFound(Exception):
    pass


@dataclass(frozen=True)
class CachedProduct:
    """A product as the app cache keeps it: its payload, and what conditional requests need."""

    id: int
    version: int
    updated_at: datetime
    category_slug: str
    data: dict[str, Any]

    @property
    def etag(self) -> str:
        return product_etag(self.id, self.version)

    @property
    def cache_tags(self) -> list[str]:
        return [f"product:{self.id}", f"category:{self.category_slug}"]

    def to_entry(self) -> dict[str, Any]:
        return {"version": self.version, "category": self.category_slug, "data": self.data}

    @classmethod
    def from_entry(cls, product_id: int, entry: dict[str, Any]) -> CachedProduct:
        data = entry["data"]
        return cls(
            id=product_id,
            version=entry["version"],
            # The ISO 8601 string ProductSerializer wrote (DRF's format, which fromisoformat reads).
            updated_at=datetime.fromisoformat(data["updated_at"]),
            category_slug=entry["category"],
            data=data,
        )

    @classmethod
    def from_product(cls, product: Product) -> CachedProduct:
        return cls(
            id=product.id,
            version=product.version,
            updated_at=product.updated_at,
            category_slug=product.category.slug,
            data=ProductSerializer(product).data,
        )


def product_etag(product_id: int, version: int) -> str:
    """Return the strong ETag of a product at a version."""
    return f'"product-{product_id}-v{version}"'


def load_product(product_id: int) -> CachedProduct:
    """Read one product from the database (the cache's loader; a test hook counts its calls)."""
    return CachedProduct.from_product(product_instance(product_id=product_id))


def product_instance(*, product_id: int) -> Product:
    """Return the product's model instance straight from the database (for write validation)."""
    if not 0 < product_id <= MAX_ID:
        raise ProductNotFound(product_id)
    try:
        return Product.objects.select_related("category").get(pk=product_id)
    except Product.DoesNotExist:
        raise ProductNotFound(product_id) from None


def product_get(*, product_id: int) -> CachedProduct:
    """Return a product from the app cache, loading it once from the database on a miss."""
    if not 0 < product_id <= MAX_ID:
        raise ProductNotFound(product_id)  # an id no database column can hold is simply unknown
    try:
        if (entry := product_cache.get(product_id)) is not None:
            return CachedProduct.from_entry(product_id, entry)
        with product_cache.fill_lock(product_id):
            # Whoever held the lock before us has probably stored it by now.
            if (entry := product_cache.get(product_id)) is not None:
                return CachedProduct.from_entry(product_id, entry)
            seen_generation = product_cache.generation(product_id)
            product = load_product(product_id)
            product_cache.store_if_current(product_id, seen_generation, product.to_entry())
            return product
    except redis.RedisError as exc:
        # Without Redis the catalog still answers, from the database: slower, never wrong.
        logger.warning(
            "app cache unavailable, reading product %s from the database: %s", product_id, exc
        )
        return load_product(product_id)


def product_queryset(*, category_slug: str | None = None) -> QuerySet[Product]:
    """Return the products to list, optionally of one category, in a stable order."""
    products = Product.objects.select_related("category").order_by("id")
    if category_slug:
        products = products.filter(category__slug=category_slug)
    return products


@dataclass(frozen=True)
class ListFingerprint:
    """What changes whenever a product list's content can change, from one aggregate query."""

    count: int
    last_modified: datetime | None
    # Moves on every update even when app servers' clocks disagree about updated_at.
    version_sum: int

    def etag(self, *parts: object) -> str:
        stamp = self.last_modified.timestamp() if self.last_modified else 0
        key = "-".join(str(part) for part in (*parts, self.count, self.version_sum, stamp))
        return f'"products-{key}"'


def product_list_fingerprint(*, category_slug: str | None = None) -> ListFingerprint:
    """Return the count, latest change and version total of the products a list shows."""
    totals = (
        product_queryset(category_slug=category_slug)
        .order_by()
        .aggregate(count=Count("id"), last_modified=Max("updated_at"), version_sum=Sum("version"))
    )
    return ListFingerprint(totals["count"], totals["last_modified"], totals["version_sum"] or 0)


def product_by_slug(*, slug: str) -> Product | None:
    """Return the product with this slug and its category, or None."""
    return Product.objects.select_related("category").filter(slug=slug).first()


class ProductCount(TypedDict):
    """What category_list annotates each category with."""

    product_count: int


def category_list() -> QuerySet[WithAnnotations[Category, ProductCount]]:
    """Return every category with its number of products."""
    return Category.objects.annotate(product_count=Count("products")).order_by("name")


def category_get(*, slug: str) -> Category | None:
    """Return the category with this slug, or None (without a query when it cannot be a slug)."""
    if not slug_re.match(slug):
        return None  # PostgreSQL answers a NUL character in a query with an error, not a miss
    return Category.objects.filter(slug=slug).first()


def newest_products(*, category_slugs: list[str], limit: int) -> list[dict[str, Any]]:
    """Return the newest products of these categories, newest first (for personal feeds)."""
    products = (
        Product.objects.select_related("category")
        .filter(category__slug__in=category_slugs)
        .order_by("-updated_at", "-id")[:limit]
    )
    # many=True makes a ListSerializer, whose data is a list (the stub knows only Serializer's).
    return cast(list[dict[str, Any]], ProductSerializer(products, many=True).data)


def existing_category_slugs(slugs: list[str]) -> set[str]:
    """Return which of these slugs name an existing category."""
    return set(Category.objects.filter(slug__in=slugs).values_list("slug", flat=True))
