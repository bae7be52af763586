"""Every request gets an X-Request-ID (echoed or generated) and one structured access-log line."""

import json
import logging
import re

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from gateway.context import RequestContext


def access_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "gateway.access"]


def test_a_request_without_an_id_gets_a_new_one(asgi):
    response = asgi.get("/healthz")

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_a_well_formed_id_is_echoed(asgi):
    response = asgi.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})

    assert response.headers["x-request-id"] == "lb-7f3a.42"


@pytest.mark.parametrize("bad_id", ["has spaces", "x" * 129, "inject\\nnewline", ""])
def test_a_malformed_id_is_replaced(asgi, bad_id):
    response = asgi.get("/healthz", headers={"X-Request-ID": bad_id})

    assert response.headers["x-request-id"] != bad_id
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_each_request_logs_one_line_with_its_fields(asgi, caplog):
    caplog.set_level(logging.INFO, logger="gateway.access")

    response = asgi.get("/api/v1/missing/", headers={"X-Request-ID": "abc-123"})

    [record] = access_records(caplog)
    assert (record.method, record.path, record.status, record.request_id) == (
        "GET",
        "/api/v1/missing/",
        404,
        "abc-123",
    )
    assert response.status_code == 404
    assert isinstance(record.duration_ms, float)
    assert record.duration_ms >= 0


def test_the_access_line_is_json_on_one_line(asgi, caplog):
    caplog.set_level(logging.INFO, logger="gateway.access")
    asgi.get("/healthz", headers={"X-Request-ID": "line-1"})
    [record] = access_records(caplog)
    options = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}

    line = JsonFormatter(**options).format(record)

    assert "\n" not in line
    fields = json.loads(line)
    assert {
        k: fields[k] for k in ("logger", "message", "method", "path", "status", "request_id")
    } == {
        "logger": "gateway.access",
        "message": "request",
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "request_id": "line-1",
    }


def test_django_sees_the_same_request_id_the_client_gets():
    seen = {}

    async def app(scope, receive, send):
        seen["request_id"] = dict(scope["headers"])[b"x-request-id"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = []

    async def send(event):
        sent.append(event)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    async_to_sync(RequestContext(app))(scope, None, send)

    response_headers = dict(sent[0]["headers"])
    assert response_headers[b"x-request-id"] == seen["request_id"]


def test_a_failing_app_is_logged_as_a_500(caplog):
    caplog.set_level(logging.INFO, logger="gateway.access")

    async def app(scope, receive, send):
        raise RuntimeError("view exploded")

    async def send(event):
        pass

    scope = {"type": "http", "method": "POST", "path": "/boom", "headers": []}
    with pytest.raises(RuntimeError):
        async_to_sync(RequestContext(app))(scope, None, send)

    [record] = access_records(caplog)
    assert (record.path, record.status) == ("/boom", 500)
