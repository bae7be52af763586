"""seed_catalog creates the same catalog every time, and only into an empty database."""

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Category, Product

pytestmark = pytest.mark.django_db


def catalog_snapshot() -> list[tuple]:
    return list(
        Product.objects.order_by("sku").values_list("sku", "name", "price", "category__slug")
    )


def test_the_same_seed_gives_the_same_catalog():
    call_command("seed_catalog", products=40)
    first = catalog_snapshot()
    Product.objects.all().delete()
    Category.objects.all().delete()

    call_command("seed_catalog", products=40)

    assert catalog_snapshot() == first
    assert len(first) == 40
    assert Category.objects.count() == 16


def test_it_refuses_a_catalog_that_has_products_unless_told_to_skip():
    call_command("seed_catalog", products=3)

    with pytest.raises(CommandError):
        call_command("seed_catalog", products=3)
    call_command("seed_catalog", products=3, if_empty=True)

    assert Product.objects.count() == 3
