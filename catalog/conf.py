"""The catalog's settings: `settings.CATALOG` over these defaults (README, "Caching headers")."""

from django.conf import settings

DEFAULTS = {
    # The browser cannot be purged, so its copy stays fresh only briefly.
    "BROWSER_MAX_AGE": 60,
    # Shared caches (the gateway, nginx, a CDN) are purged on every change: they may keep it long.
    "SHARED_MAX_AGE": 3600,
    # After expiry a shared cache may serve its copy this long while it refreshes in the background.
    "STALE_WHILE_REVALIDATE": 60,
    # ...and this long when the origin fails (the database is down).
    "STALE_IF_ERROR": 86400,
    # Seconds a product stays in the app's Redis cache; invalidation removes it sooner on change.
    "APP_CACHE_TTL": 3600,
    "PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 100,
}


def catalog_setting(name: str) -> int:
    """Return one catalog setting, the project's value over the default."""
    return {**DEFAULTS, **settings.CATALOG}[name]
