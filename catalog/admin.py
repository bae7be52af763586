from django.contrib import admin
from django.http import HttpRequest

from catalog.models import Category, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = ["name", "slug", "updated_at"]
    search_fields = ["name", "slug"]

    def get_readonly_fields(self, request: HttpRequest, obj: Category | None = None) -> list[str]:
        # The slug is the category's identity in product payloads and cache tags: set once.
        return ["slug"] if obj is not None else []


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = [
        "sku",
        "name",
        "category",
        "price",
        "currency",
        "stock",
        "version",
        "updated_at",
    ]
    list_filter = ["category"]
    search_fields = ["sku", "name", "slug"]
    list_select_related = ["category"]
    readonly_fields = ["version", "updated_at"]
    prepopulated_fields = {"slug": ["name"]}
