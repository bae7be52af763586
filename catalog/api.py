"""The catalog's REST API: thin views over selectors (reads) and services (writes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors, services
from catalog.conf import catalog_setting
from catalog.http_caching import conditional, if_match_etags
from catalog.serializers import CategorySerializer, ProductSerializer
from config.openapi import IF_NONE_MATCH, NOT_MODIFIED, errors, etag_headers, header

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="The product's ETag as you read it: 428 without it, 412 when it is stale.",
)
# Reads never look at who asks (see CatalogApiView); the gateway still refuses a bad token.
PUBLIC: list[str] = [{}]  # type: ignore[list-item]  # drf-spectacular's "no authentication"; its hint says str
READ_HEADERS = [
    *etag_headers(200, 304),
    header("Last-Modified", "When it last changed.", 200, 304),
    header("Cache-Tag", "What purges this response from shared caches.", 200),
]


class IsStaffOrReadOnly(BasePermission):
    """Anyone may read; only staff (a staff JWT or the admin's session) may write."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        # A method the view lacks is let through, so that DRF answers 405 and not 401 or 403.
        method = request.method or ""  # None only on an HttpRequest made by hand
        if method in SAFE_METHODS or not hasattr(view, method.lower()):
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class PreconditionRequired(APIException):
    status_code = 428
    default_detail = "Send If-Match with the product's current ETag, so no update is lost."
    default_code = "precondition_required"


class PreconditionFailed(APIException):
    status_code = 412
    default_detail = "The product has changed since you read it; read it again, then retry."
    default_code = "precondition_failed"

    def __init__(self, current_etag: str) -> None:
        super().__init__()
        self.headers = {"ETag": current_etag}


class CatalogApiView(APIView):
    permission_classes = [IsStaffOrReadOnly]

    def perform_authentication(self, request: Request) -> None:
        # Public reads never look at who is asking, so they never touch a session (no Vary: Cookie)
        # and stay identical for everybody: what a shared cache needs. Writes authenticate.
        if request.method not in SAFE_METHODS:
            super().perform_authentication(request)


class ProductListQuerySerializer(serializers.Serializer[dict[str, Any]]):
    # Checked before any of them reaches an ETag or Cache-Tag header, where a newline is an error.
    category = serializers.SlugField(required=False, allow_blank=True, help_text="A category slug.")
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(
        min_value=1, required=False, help_text="Capped at CATALOG['MAX_PAGE_SIZE'], not refused."
    )


class ProductPageSerializer(serializers.Serializer[dict[str, Any]]):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProductSerializer(many=True)


class ProductPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    def __init__(self) -> None:
        # Read per paginator, that is per request: a change of settings.CATALOG applies at once.
        self.page_size = catalog_setting("PAGE_SIZE")
        self.max_page_size = catalog_setting("MAX_PAGE_SIZE")


def product_response(product: selectors.CachedProduct, *, status_code: int = 200) -> Response:
    response = Response(product.data, status=status_code)
    response.headers["ETag"] = product.etag
    return response


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn the catalog's domain errors into HTTP ones."""
    try:
        yield
    except selectors.ProductNotFound:
        raise NotFound("No product with this id.") from None
    except services.PreconditionFailed as stale:
        raise PreconditionFailed(stale.current_etag) from None


def required_if_match(request: Request) -> list[str]:
    if_match = if_match_etags(request)
    if if_match is None:
        raise PreconditionRequired()
    return if_match


class ProductListApi(CatalogApiView):
    @extend_schema(
        parameters=[ProductListQuerySerializer, IF_NONE_MATCH, *READ_HEADERS],
        responses={200: ProductPageSerializer, 304: NOT_MODIFIED, **errors(404, 412)},
        auth=PUBLIC,
    )
    def get(self, request: Request) -> HttpResponse:
        query = ProductListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        category = query.validated_data.get("category") or None
        fingerprint = selectors.product_list_fingerprint(category_slug=category)
        paginator = ProductPagination()
        page_size = paginator.get_page_size(request)
        etag = fingerprint.etag(category or "all", query.validated_data.get("page", 1), page_size)
        tags = ["products", *([f"category:{category}"] if category else [])]
        # The fingerprint answers a conditional request before any product row is read.
        response = Response()
        answer = conditional(
            request, response, etag=etag, last_modified=fingerprint.last_modified, cache_tags=tags
        )
        if answer is not response:
            return answer
        page = paginator.paginate_queryset(
            selectors.product_queryset(category_slug=category), request
        )
        response.data = paginator.get_paginated_response(
            ProductSerializer(page, many=True).data
        ).data
        return response

    @extend_schema(
        request=ProductSerializer,
        responses={201: ProductSerializer, **errors(403)},
        parameters=[header("ETag", "The new product's version.", 201), header("Location", "", 201)],
    )
    def post(self, request: Request) -> Response:
        serializer = ProductSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_create(data=serializer.validated_data)
        created = selectors.CachedProduct.from_product(product)
        response = product_response(created, status_code=status.HTTP_201_CREATED)
        response.headers["Location"] = f"{request.path}{product.id}/"
        return response


WRITE_RESPONSES = {200: ProductSerializer, **errors(403, 412, 428)}
WRITE_PARAMS = [IF_MATCH, header("ETag", "The product's new version.", 200, 412)]


class ProductDetailApi(CatalogApiView):
    @extend_schema(
        parameters=[IF_NONE_MATCH, *READ_HEADERS],
        responses={200: ProductSerializer, 304: NOT_MODIFIED, **errors(404, 412)},
        auth=PUBLIC,
    )
    def get(self, request: Request, product_id: int) -> HttpResponse:
        product = self._get(product_id)
        return conditional(
            request,
            Response(product.data),
            etag=product.etag,
            last_modified=product.updated_at,
            cache_tags=product.cache_tags,
        )

    @extend_schema(request=ProductSerializer, responses=WRITE_RESPONSES, parameters=WRITE_PARAMS)
    def put(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, partial=False)

    @extend_schema(request=ProductSerializer, responses=WRITE_RESPONSES, parameters=WRITE_PARAMS)
    def patch(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, partial=True)

    @extend_schema(responses={204: None, **errors(403, 412, 428)}, parameters=[IF_MATCH])
    def delete(self, request: Request, product_id: int) -> Response:
        if_match = required_if_match(request)
        with translated_errors():
            services.product_delete(product_id=product_id, if_match=if_match)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, product_id: int, *, partial: bool) -> Response:
        if_match = required_if_match(request)
        with translated_errors():
            instance = selectors.product_instance(product_id=product_id)
            serializer = ProductSerializer(instance, data=request.data, partial=partial)
            serializer.is_valid(raise_exception=True)
            product = services.product_update(
                product_id=product_id, if_match=if_match, data=serializer.validated_data
            )
        return product_response(selectors.CachedProduct.from_product(product))

    @staticmethod
    def _get(product_id: int) -> selectors.CachedProduct:
        with translated_errors():
            return selectors.product_get(product_id=product_id)


class CategoryListApi(CatalogApiView):
    @extend_schema(
        parameters=[IF_NONE_MATCH, *READ_HEADERS],
        responses={200: CategorySerializer(many=True), 304: NOT_MODIFIED, **errors(412)},
        auth=PUBLIC,
    )
    def get(self, request: Request) -> HttpResponse:
        categories = list(selectors.category_list())
        latest = max((category.updated_at for category in categories), default=None)
        stamp = int(latest.timestamp() * 1_000_000) if latest else 0
        etag = f'"categories-{len(categories)}-{stamp}-{sum(c.product_count for c in categories)}"'
        return conditional(
            request,
            Response(CategorySerializer(categories, many=True).data),
            etag=etag,
            last_modified=latest,
            cache_tags=["categories"],
        )
