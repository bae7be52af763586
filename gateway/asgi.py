"""The Gateway ASGI application: the edge layers, composed in the order a request meets them."""

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from gateway.context import RequestContext


class Gateway:
    """Wrap the project's ASGI application with the edge layers (see DESIGN.md, request paths)."""

    def __init__(self, app) -> None:
        self.app = RequestContext(app)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        await self.app(scope, receive, send)
