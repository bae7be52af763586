"""Metrics, cluster-wide: /metrics parses as Prometheus text, the JSON and the dashboard agree."""

import http.server
import re
import threading

import pytest
from django.contrib.auth import get_user_model

from gateway import purge
from tests.catalog.factories import make_product
from tests.support import wait_for

pytestmark = pytest.mark.django_db

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="(\\.|[^"\\])*",?)*\})? -?[0-9.e+]+$')


def parse_prometheus(text: str) -> dict[str, float]:
    """Parse the exposition format strictly: every line a comment or a well-formed sample."""
    samples = {}
    for line in text.strip().splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), f"not a Prometheus sample: {line!r}"
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_metrics_count_requests_cache_outcomes_and_latency_per_route(asgi):
    product = make_product()
    for _ in range(3):
        asgi.get(f"/api/v1/products/{product.id}/")

    samples = parse_prometheus(asgi.get("/metrics").text)

    route = 'route="catalog-api:product"'
    assert samples[f'gateway_requests_total{{{route},status="2xx"}}'] == 3
    assert samples[f'gateway_cache_total{{{route},outcome="MISS"}}'] == 1
    assert samples[f'gateway_cache_total{{{route},outcome="HIT"}}'] == 2
    assert samples[f'gateway_request_duration_seconds_bucket{{{route},le="+Inf"}}'] == 3
    assert samples[f"gateway_request_duration_seconds_count{{{route}}}"] == 3


def test_metrics_count_throttled_requests(asgi, settings):
    settings.GATEWAY = {**settings.GATEWAY, "RATES": {**settings.GATEWAY["RATES"], "anon": "1/min"}}
    asgi.get("/api/v1/nothing/")
    asgi.get("/api/v1/nothing/")

    samples = parse_prometheus(asgi.get("/metrics").text)

    assert samples['gateway_throttled_total{route="api-not-found",policy="anon"}'] == 1


def test_the_stats_json_has_the_same_numbers_and_a_series(asgi):
    product = make_product()
    asgi.get(f"/api/v1/products/{product.id}/")
    asgi.get(f"/api/v1/products/{product.id}/")

    stats = asgi.get("/api/v1/gateway/stats/").json()

    route = stats["totals"]["routes"]["catalog-api:product"]
    assert route["requests"] == {"2xx": 2}
    assert route["cache"] == {"MISS": 1, "HIT": 1}
    assert len(stats["series"]) == 60


def test_the_dashboard_draws_its_charts_from_the_stats(asgi):
    response = asgi.get("/gateway/")

    assert response.status_code == 200
    assert 'data-stats-url="/api/v1/gateway/stats/"' in response.text
    assert response.text.count("<canvas") == 4
    assert asgi.get("/static/gateway/dashboard.js").status_code == 200


@pytest.fixture
def staff_token(db) -> str:
    from sessions_demo.tokens import token_pair_for

    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    return token_pair_for(staff)["access"]


@pytest.fixture
def user_token(db) -> str:
    from sessions_demo.tokens import token_pair_for

    return token_pair_for(get_user_model().objects.create_user("bob", password="x"))["access"]


def test_staff_purge_a_tag_and_the_next_read_is_a_miss(asgi, staff_token):
    product = make_product()
    url = f"/api/v1/products/{product.id}/"
    asgi.get(url)

    response = asgi.post(
        "/api/v1/gateway/purge/",
        json={"tags": [f"product:{product.id}", "no-such-tag"]},
        headers={"Authorization": f"Bearer {staff_token}"},
    )

    assert response.json() == {"purged": 1}
    assert asgi.get(url).headers["x-cache"] == "MISS"


def test_staff_purge_a_url(asgi, staff_token):
    product = make_product()
    url = f"/api/v1/products/{product.id}/"
    asgi.get(url)

    response = asgi.post(
        "/api/v1/gateway/purge/",
        json={"urls": [url]},
        headers={"Authorization": f"Bearer {staff_token}"},
    )

    assert response.json() == {"purged": 1}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tags": "product:1"},
        {"tags": [1, 2]},
        {"tags": ["a"], "urls": ["/b"]},
        {"urls": ["no-slash"]},
        [],
    ],
)
def test_a_purge_body_that_is_not_one_list_of_strings_is_a_400(asgi, staff_token, body):
    response = asgi.post(
        "/api/v1/gateway/purge/", json=body, headers={"Authorization": f"Bearer {staff_token}"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_only_staff_may_purge(asgi, user_token):
    as_user = asgi.post(
        "/api/v1/gateway/purge/",
        json={"tags": ["products"]},
        headers={"Authorization": f"Bearer {user_token}"},
    )
    anonymous = asgi.post("/api/v1/gateway/purge/", json={"tags": ["products"]})

    assert as_user.status_code == 403
    assert anonymous.status_code == 401


class EdgeCache(http.server.BaseHTTPRequestHandler):
    """A stand-in for nginx or Varnish that records the purges it is sent."""

    received: list[tuple[str, str, str | None]] = []

    def do_PURGE(self) -> None:  # the HTTP method names the handler
        self.record()

    def do_BAN(self) -> None:
        self.record()

    def record(self) -> None:
        self.received.append((self.command, self.path, self.headers.get("X-Cache-Tags")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_purges_reach_the_configured_edge_caches(settings):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EdgeCache)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    EdgeCache.received = []
    settings.GATEWAY = {
        **settings.GATEWAY,
        "EDGE_PURGE_URLS": [f"http://127.0.0.1:{server.server_port}"],
    }
    try:
        purge.tags(["product:7", "products"])
        purge.urls(["/api/v1/products/7/"])
        wait_for(
            lambda: len(EdgeCache.received) == 2, timeout=5, what="the edge to get both purges"
        )
    finally:
        server.shutdown()

    assert sorted(EdgeCache.received) == [
        ("BAN", "/", "product:7|products"),
        ("PURGE", "/api/v1/products/7/", None),
    ]


def test_a_purge_tag_longer_than_the_limit_is_refused_even_with_surrounding_space(
    asgi, staff_token
):
    response = asgi.post(
        "/api/v1/gateway/purge/",
        json={"tags": ["\n" + "t" * 200]},
        headers={"Authorization": f"Bearer {staff_token}"},
    )

    assert response.status_code == 400
