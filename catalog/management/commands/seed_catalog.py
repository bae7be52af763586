"""Create a deterministic demo catalog: the same seed gives the same products, every time."""

import random
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.models import Category, Product

CATEGORIES = [
    ("shoes", "Shoes"), ("jackets", "Jackets"), ("bags", "Bags"), ("watches", "Watches"),
    ("lamps", "Lamps"), ("chairs", "Chairs"), ("tables", "Tables"), ("mugs", "Mugs"),
    ("pens", "Pens"), ("notebooks", "Notebooks"), ("headphones", "Headphones"),
    ("keyboards", "Keyboards"), ("tents", "Tents"), ("bicycles", "Bicycles"),
    ("kettles", "Kettles"), ("plants", "Plants"),
]  # fmt: skip
ADJECTIVES = [
    "Amber", "Brisk", "Cobalt", "Dusky", "Ember", "Fern", "Granite", "Harbor", "Indigo", "Juniper",
    "Kestrel", "Linen", "Maple", "Nimbus", "Onyx", "Pine", "Quartz", "Russet", "Slate", "Tidal",
]  # fmt: skip
NOUNS = ["Classic", "Pro", "Lite", "Max", "Mini", "Trail", "Urban", "Studio", "Field", "Nova"]
BATCH_SIZE = 5000


class Command(BaseCommand):
    help = "Create a deterministic catalog of N products (bulk, so no per-row signals)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--products", type=int, default=1000, help="How many (default 1,000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed (default 42).")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when products already exist."
        )

    def handle(
        self, *args: object, products: int, seed: int, if_empty: bool, **options: object
    ) -> None:
        if products < 0:
            raise CommandError("--products must be zero or more.")
        if Product.objects.exists():
            if if_empty:
                return
            raise CommandError("The catalog already has products; seed an empty database.")
        rng = random.Random(seed)
        with transaction.atomic():
            categories = Category.objects.bulk_create(
                [Category(slug=slug, name=name) for slug, name in CATEGORIES]
            )
            for start in range(0, products, BATCH_SIZE):
                Product.objects.bulk_create(
                    self._product(number, rng, categories)
                    for number in range(start, min(start + BATCH_SIZE, products))
                )
        self.stdout.write(f"Seeded {len(categories)} categories and {products} products.")

    @staticmethod
    def _product(number: int, rng: random.Random, categories: list[Category]) -> Product:
        category = categories[number % len(categories)]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {category.name.rstrip('s')}"
        return Product(
            sku=f"SKU-{number + 1:07d}",
            slug=f"{category.slug}-{number + 1}",
            name=name,
            description=f"{name}: a fine example of {category.name.lower()}, item {number + 1}.",
            price=Decimal(rng.randrange(199, 99_999)) / 100,
            stock=rng.randrange(0, 500),
            category=category,
        )
