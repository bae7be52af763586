"""bench/asgi_handler.py with every middleware sync-only: Django's ASGI handler, fewer hops.

Django runs a middleware that is async-capable (all of its own are) on the event loop, and hops to
a thread for the sync parts around it; marked sync-only, the whole chain runs in one thread. So
bench/run.py prices this option beside the WSGI bridge config.asgi uses.
"""

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.utils.module_loading import import_string

from config import asgi

sync_only = {}
for path in settings.MIDDLEWARE:
    middleware = import_string(path)
    name = middleware.__name__
    sync_only[name] = type(name, (middleware,), {"async_capable": False, "sync_capable": True})
globals().update(sync_only)
settings.MIDDLEWARE = [f"{__name__}.{name}" for name in sync_only]

asgi.application.response_cache.app.application_mapping["http"] = ASGIHandler()
application = asgi.application
