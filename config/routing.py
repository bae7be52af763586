"""WebSocket routes: each app's consumers are listed here as its issue lands."""

from quotes.routing import websocket_urlpatterns as quotes_routes

websocket_urlpatterns: list = [*quotes_routes]
