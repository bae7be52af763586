"""Factories for catalog rows: valid by default, any field overridable."""

from decimal import Decimal
from itertools import count

from catalog.models import Category, Product

_numbers = count(1)


def make_category(**overrides) -> Category:
    number = next(_numbers)
    fields = {"slug": f"category-{number}", "name": f"Category {number}", **overrides}
    return Category.objects.create(**fields)


def make_product(**overrides) -> Product:
    number = next(_numbers)
    if "category" not in overrides:
        overrides["category"] = make_category()
    fields = {
        "sku": f"SKU-{number:05d}",
        "slug": f"product-{number}",
        "name": f"Product {number}",
        "description": "A product for tests.",
        "price": Decimal("19.99"),
        "stock": 5,
        **overrides,
    }
    return Product.objects.create(**fields)
