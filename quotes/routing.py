"""WebSocket routes of the quotes app (listed in config/routing.py)."""

from django.urls import path

from quotes.consumers import QuotesConsumer

websocket_urlpatterns = [path("ws/quotes/", QuotesConsumer.as_asgi())]
