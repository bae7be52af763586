"""The catalog's API representations and input validation."""

from rest_framework import serializers

from catalog.models import Category, Product


class CategorySerializer(serializers.ModelSerializer):
    product_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Category
        fields = ["slug", "name", "product_count"]


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", queryset=Category.objects.all())
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    currency = serializers.RegexField(r"^[A-Z]{3}$", max_length=3, required=False)

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "slug",
            "name",
            "description",
            "price",
            "currency",
            "stock",
            "category",
            "updated_at",
            "version",
        ]
        read_only_fields = ["id", "updated_at", "version"]
