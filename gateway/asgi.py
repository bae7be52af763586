"""The Gateway ASGI application: the edge layers, composed in the order a request meets them."""

from gateway.auth import EdgeAuth
from gateway.context import RequestContext
from gateway.http import ASGIApp
from gateway.response_cache import ResponseCache
from gateway.throttling import Throttle


class Gateway(RequestContext):
    """Wrap the project's ASGI application with the edge layers (docs/architecture.md).

    Request id, access log and metrics; then the JWT, checked once; then the throttle; then the
    shared response cache; and only then Django. The gateway is its outermost layer, the request
    context, rather than a wrapper around it: one coroutine less on every request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.response_cache = ResponseCache(app)
        super().__init__(EdgeAuth(Throttle(self.response_cache)))
