"""The catalog's data: categories and the products in them."""

from typing import Any

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F


class Category(models.Model):
    # The slug is the category's identity in URLs, cache tags and product payloads: set once.
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    slug = models.SlugField(max_length=140, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="EUR", help_text="ISO 4217 code")
    stock = models.PositiveIntegerField(default=0)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # Bumped by the database on every save, so two concurrent saves can never share a version:
    # the version is the ETag, and it keys the app cache.
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__gte=0), name="product_price_not_negative"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding:
            super().save(*args, **kwargs)
            return
        self.version = F("version") + 1
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "version", "updated_at"}
        super().save(*args, **kwargs)
        self.refresh_from_db(fields=["version"])
