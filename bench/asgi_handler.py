"""config.asgi's application with Django's own ASGI handler behind the gateway (the old path).

bench/run.py serves it beside config.asgi, whose misses go through Django's WSGI handler.
"""

from config import asgi

asgi.application.response_cache.app.application_mapping["http"] = asgi.django_asgi_app
application = asgi.application
