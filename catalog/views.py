"""The catalog's HTML pages: the same caching headers and conditional requests as the API."""

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string

from catalog import selectors
from catalog.conf import catalog_setting
from catalog.http_caching import conditional


def product_list(request: HttpRequest) -> HttpResponse:
    """List products, optionally of one category, a page at a time."""
    category_slug = request.GET.get("category") or None
    category = selectors.category_get(slug=category_slug) if category_slug else None
    if category_slug and category is None:
        raise Http404("No such category.")
    categories = list(selectors.category_list())
    fingerprint = selectors.product_list_fingerprint(category_slug=category_slug)
    page_number = request.GET.get("page", "1")
    categories_stamp = max((c.updated_at.timestamp() for c in categories), default=0)
    etag = fingerprint.etag(
        "page", category_slug or "all", page_number, len(categories), categories_stamp
    )
    tags = ["products", "categories", *([f"category:{category_slug}"] if category_slug else [])]
    response = HttpResponse()
    answer = conditional(
        request, response, etag=etag, last_modified=fingerprint.last_modified, cache_tags=tags
    )
    if answer is not response:
        return answer
    paginator = Paginator(
        selectors.product_queryset(category_slug=category_slug), catalog_setting("PAGE_SIZE")
    )
    page = paginator.get_page(page_number)
    context = {"categories": categories, "category": category, "page": page}
    response.content = render_to_string("catalog/product_list.html", context, request)
    return response


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """Show one product."""
    product = selectors.product_by_slug(slug=slug)
    if product is None:
        raise Http404("No such product.")
    # The page shows its category's name too, so the category's changes are part of its ETag.
    etag = f'"page-{product.id}-v{product.version}-c{product.category.updated_at.timestamp()}"'
    last_modified = max(product.updated_at, product.category.updated_at)
    tags = [f"product:{product.id}", f"category:{product.category.slug}"]
    response = HttpResponse()
    answer = conditional(request, response, etag=etag, last_modified=last_modified, cache_tags=tags)
    if answer is not response:
        return answer
    context = {"product": product}
    response.content = render_to_string("catalog/product_detail.html", context, request)
    return response
