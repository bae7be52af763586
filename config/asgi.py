"""The ASGI entry point: the gateway in front of Django, for HTTP and WebSocket alike."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# Django must be set up before anything below imports models or consumers.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.redis_wiring import check_sentinels  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from gateway.asgi import Gateway  # noqa: E402
from gateway.conf import gateway_setting  # noqa: E402
from gateway.wsgi_bridge import WSGIBridge  # noqa: E402

# Sentinels that do not know the master they were given are a configuration error: say so now.
check_sentinels(settings.REDIS, settings.REDIS_TIMEOUT)

# What reaches Django goes through its WSGI handler, one thread hop instead of ~26 with the ASGI
# handler (docs/performance.md); the streams are async views and keep the ASGI handler.
django_http = WSGIBridge(django_asgi_app, asgi_paths=tuple(gateway_setting("STREAM_PATHS")))
http_app = (
    ASGIStaticFilesHandler(django_http)  # type: ignore[arg-type]  # Django's stub wants its ASGIHandler; any ASGI app serves
    if settings.SERVE_STATIC
    else django_http
)

application = Gateway(
    ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
        }
    )
)

# A server holds the objects of every open connection: at 20,000 WebSockets the cyclic collector
# walked millions of them, 15 full passes in a worker during one fan-out run, the longest 2.1 s
# (docs/performance.md). Young collections far rarer, so fewer objects outlive them into the old
# generation; and what exists now (Django, the apps, this module's graph), never to be freed, out
# of every pass.
GC_THRESHOLDS = (50_000, 20, 10)
gc.set_threshold(*GC_THRESHOLDS)
gc.freeze()
