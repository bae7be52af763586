"""WebSocket routes: each app's consumers are listed here as its issue lands."""

websocket_urlpatterns: list = []
