"""Every error under /api/ is JSON {"detail", "code"}; the docs and schema ship without a CDN."""

import re

import redis
from django.db import OperationalError
from rest_framework import exceptions
from rest_framework.exceptions import ErrorDetail

from config.errors import api_exception_handler


def test_unknown_api_route_is_a_json_404(asgi):
    response = asgi.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "No API endpoint at this path.", "code": "not_found"}


def test_unknown_api_route_stays_json_under_debug(asgi, settings):
    settings.DEBUG = True

    response = asgi.get("/api/nothing-here")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_unknown_page_outside_the_api_is_an_html_page(asgi):
    response = asgi.get("/no-such-page/")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>404</h1>" in response.text


def test_wrong_method_on_an_api_route_is_a_json_405(asgi):
    response = asgi.post("/api/schema/", json={})

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.', "code": "method_not_allowed"}


class _View:
    pass


def test_validation_errors_keep_their_field_errors():
    exc = exceptions.ValidationError(
        {"price": ["Ensure this value is greater than or equal to 0."]}
    )

    response = api_exception_handler(exc, {"view": _View()})

    assert response.status_code == 400
    assert response.data == {
        "detail": "Invalid input.",
        "code": "invalid",
        "errors": {
            "price": [
                ErrorDetail("Ensure this value is greater than or equal to 0.", code="invalid")
            ]
        },
    }


def test_api_exceptions_carry_their_code():
    response = api_exception_handler(exceptions.Throttled(wait=3), {"view": _View()})

    assert response.status_code == 429
    assert response.data["code"] == "throttled"
    assert response.data["detail"].startswith("Request was throttled.")


def test_unexpected_exceptions_become_a_json_500(caplog):
    response = api_exception_handler(RuntimeError("boom"), {"view": _View()})

    assert response.status_code == 500
    assert response.data == {"detail": "Internal server error.", "code": "server_error"}
    assert "unhandled error in _View" in caplog.text


def test_schema_is_openapi(asgi):
    response = asgi.get("/api/schema/", params={"format": "json"})

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")
    assert response.json()["info"]["title"] == "Stateless & Cacheable"


def test_docs_page_loads_its_assets_from_this_server_only(asgi):
    response = asgi.get("/api/docs/")

    assert response.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources, "the docs page references no assets"
    assert all(source.startswith("/") for source in sources), sources
    scripts = [source for source in sources if source.endswith(".js")]
    assert scripts
    assert all(asgi.get(script).status_code == 200 for script in scripts)


def test_redis_being_down_is_a_503_that_says_so():
    response = api_exception_handler(redis.ConnectionError("refused"), {"view": _View()})

    assert response.status_code == 503
    assert response.data == {
        "detail": "Redis is unavailable; try again shortly.",
        "code": "service_unavailable",
    }


def test_the_database_being_down_is_a_503_that_says_so():
    response = api_exception_handler(OperationalError("no route to host"), {"view": _View()})

    assert response.status_code == 503
    assert response.data["detail"] == "The database is unavailable; try again shortly."
