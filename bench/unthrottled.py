"""config.asgi's application less the throttle layer: so bench/run.py can price the throttle."""

from config.asgi import application
from gateway.auth import EdgeAuth
from gateway.context import RequestContext

application.app = RequestContext(EdgeAuth(application.response_cache))
