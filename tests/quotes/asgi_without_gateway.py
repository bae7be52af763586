"""The project's ASGI app without the gateway: for tests of what daphne does to a consumer."""

from config.asgi import django_asgi_app  # noqa: I001 - sets Django up before the routes import

from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from config.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
