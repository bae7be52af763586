"""Routes of the catalog app: `urlpatterns` for its pages, `api_urlpatterns` under /api/v1/."""

from django.urls import path

from catalog import api, views

app_name = "catalog"

urlpatterns = [
    path("catalog/", views.product_list, name="product-list"),
    path("catalog/<slug:slug>/", views.product_detail, name="product-detail"),
]

api_urlpatterns = [
    path("products/", api.ProductListApi.as_view(), name="products"),
    path("products/<int:product_id>/", api.ProductDetailApi.as_view(), name="product"),
    path("categories/", api.CategoryListApi.as_view(), name="categories"),
]
