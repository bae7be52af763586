"""The Gateway ASGI application: the edge layers, composed in the order a request meets them."""

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from gateway.auth import EdgeAuth
from gateway.context import RequestContext
from gateway.response_cache import ResponseCache
from gateway.throttling import Throttle


class Gateway:
    """Wrap the project's ASGI application with the edge layers (docs/architecture.md).

    Request id, access log and metrics; then the JWT, checked once; then the throttle; then the
    shared response cache; and only then Django.
    """

    def __init__(self, app) -> None:
        self.response_cache = ResponseCache(app)
        self.app = RequestContext(EdgeAuth(Throttle(self.response_cache)))

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        await self.app(scope, receive, send)
