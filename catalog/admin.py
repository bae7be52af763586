from django.contrib import admin

from catalog.models import Category, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "updated_at"]
    search_fields = ["name", "slug"]

    def get_readonly_fields(self, request, obj=None):
        # The slug is the category's identity in product payloads and cache tags: set once.
        return ["slug"] if obj is not None else []


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
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
