"""The Gateway ASGI application: the edge layers, composed in the order a request meets them."""

from gateway.auth import EdgeAuth
from gateway.context import RequestContext
from gateway.http import ASGIApp, Receive, Scope, Send
from gateway.response_cache import ResponseCache
from gateway.throttling import Throttle


class Gateway:
    """Wrap the project's ASGI application with the edge layers (docs/architecture.md).

    Request id, access log and metrics; then the JWT, checked once; then the throttle; then the
    shared response cache; and only then Django.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.response_cache = ResponseCache(app)
        self.app = RequestContext(EdgeAuth(Throttle(self.response_cache)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
