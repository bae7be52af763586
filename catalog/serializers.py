"""The catalog's API representations and input validation."""

from django.core.validators import slug_re
from rest_framework import serializers

from catalog.models import Category, Product


class CategorySerializer(serializers.ModelSerializer[Category]):
    product_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Category
        fields = ["slug", "name", "product_count"]


class CategorySlugField(serializers.SlugRelatedField[Category]):
    """A category named by its slug; a value no slug can be is refused before any query.

    DRF's field queries whatever string it is given, and PostgreSQL answers a NUL character with an
    error (a 500), where SQLite finds nothing; its "does not exist" message would also echo a lone
    surrogate, which the JSON renderer cannot encode (another 500).
    """

    def to_internal_value(self, data: object) -> Category:
        if isinstance(data, str) and not slug_re.match(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProductSerializer(serializers.ModelSerializer[Product]):
    category = CategorySlugField(slug_field="slug", queryset=Category.objects.all())
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
