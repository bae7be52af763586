"""The URL map: each app's routes come from its own urls.py."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.decorators.cache import never_cache
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from catalog import urls as catalog_urls
from config import errors, health
from gateway import urls as gateway_urls
from quotes import urls as quotes_urls
from sessions_demo import urls as sessions_demo_urls


def admin_urls() -> tuple[list[URLPattern | URLResolver], str, str]:
    """Return the admin's URLs, none of them cacheable."""
    urlpatterns, app_name, namespace = admin.site.urls
    # The admin wraps these two with admin_view(cacheable=True), so they miss its never_cache,
    # yet they greet the user and carry their CSRF token: never for a shared cache.
    uncacheable = ("password_change", "password_change_done")
    for pattern in urlpatterns:
        if isinstance(pattern, URLPattern) and pattern.name in uncacheable:
            pattern.callback = never_cache(pattern.callback)
    return urlpatterns, app_name, namespace


APPS = [catalog_urls, sessions_demo_urls, quotes_urls, gateway_urls]

api_v1 = [path("", include((app.api_urlpatterns, f"{app.app_name}-api"))) for app in APPS]
pages = [path("", include((app.urlpatterns, app.app_name))) for app in APPS]

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin_urls()),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The docs page embeds the caller's CSRF token.
    path(
        "api/docs/",
        never_cache(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("api/v1/", include(api_v1)),
    re_path(r"^api/(?P<unmatched>.*)$", errors.api_not_found, name="api-not-found"),
    *pages,
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
