"""WebSocket routes: each app's consumers are listed here as its issue lands."""

from django.urls import URLPattern, URLResolver

from quotes.routing import websocket_urlpatterns as quotes_routes

websocket_urlpatterns: list[URLPattern | URLResolver] = [*quotes_routes]
