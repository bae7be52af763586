"""No per-user answer reaches the shared cache: every one says `private` or `no-store`.

The gateway's cache (RFC 9111) stores any response with explicit freshness (max-age, s-maxage,
Expires), `public` or `no-cache` to a request without Authorization, unless it says `private` or
`no-store`. A page that knows its user from the session cookie, or an answer the origin tailors
to whoever asks, would then be served to the next person. This test walks every GET route of the
URL resolver, asks each one as user A and as user B (by Bearer JWT, and by Django session) and
anonymously, through the whole ASGI stack, gateway included, and checks the answers' headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils.crypto import get_random_string
from django.utils.regex_helper import normalize
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from catalog.models import Category, Product
from gateway import purge
from quotes.selectors import market
from sessions_demo.tokens import token_pair_for
from tests.catalog.factories import make_category, make_product

pytestmark = pytest.mark.django_db

# Every answer of these is about the caller (tokens, identity, preferences, feed, drafts), errors
# included: sessions_demo.api promises `private, no-store` for all of them, to anybody.
PER_USER_NAMESPACE = "sessions_demo-api"
# The reads among them, which answer A and B differently: proof that this test tells them apart.
PER_USER_READS = {
    f"{PER_USER_NAMESPACE}:{name}"
    for name in ("me", "preferences", "feed", "draft-list", "draft-detail")
}
PER_USER_ROUTES = PER_USER_READS | {
    f"{PER_USER_NAMESPACE}:{name}"
    for name in ("token", "token-refresh", "token-verify", "logout", "register")
}
SKIPPED = {
    # An endless text/event-stream: httpx.ASGITransport reads a body to its end, which this one
    # never reaches (tests/quotes/test_sse.py reads it; it says `no-store`). The WebSocket routes
    # (config.routing) are not in the URL resolver at all, so the walk never meets them. The
    # admin needs no skip: a session made by force_login gets past its login form.
    "quotes-api:stream",
}
# 81 routes today, one skipped: fewer than this means that the walk lost some.
MIN_ROUTES = 75
CREDENTIALS = ("bearer", "session")


@dataclass(frozen=True)
class Route:
    name: str  # namespace:name, or the path's pattern when the route has no name
    path: str  # a concrete path, its converters filled with real objects
    callback: object
    per_user: bool  # personal by design, whatever the answers look like


@dataclass(frozen=True)
class Answer:
    status: int
    location: str | None
    body: bytes
    cache_control: str
    x_cache: str | None

    @property
    def content(self) -> tuple:
        """What a cache would hand the next person: status, redirect target and body."""
        return (self.status, self.location, self.body)

    @property
    def personal(self) -> bool:
        names = {part.split("=")[0].strip().lower() for part in self.cache_control.split(",")}
        return bool({"private", "no-store"} & names)


@dataclass
class World:
    alice: object
    bob: object
    values: dict[str, str]  # a converter's value, by its kwarg's name
    object_ids: dict[type, str]  # an existing row's pk by model, for the admin's object routes


def walk(patterns: list, prefix: tuple = (), namespaces: tuple = ()) -> Iterator[tuple]:
    """Yield (pattern chain, namespaces, URLPattern) for every route under `patterns`."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = (*namespaces, pattern.namespace) if pattern.namespace else namespaces
            yield from walk(pattern.url_patterns, (*prefix, pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            yield (*prefix, pattern.pattern), namespaces, pattern


def concrete_path(chain: tuple, callback: object, world: World) -> tuple[str, str]:
    """Return the route's template and a path for it, each of its kwargs filled from `world`."""
    # normalize() is what reverse() uses: "%(slug)s" format strings, from path() and re_path().
    template = "".join(normalize(part.regex.pattern)[0][0] for part in chain)
    model_admin = getattr(callback, "model_admin", None)  # admin/<app>/<model>/<object_id>/...
    object_id = world.object_ids[model_admin.model] if model_admin else world.values["object_id"]
    return template, "/" + template % {**world.values, "object_id": object_id}


def project_routes(world: World) -> list[Route]:
    """Every GET route of the URL resolver but the skipped ones, with a path that reaches it."""
    routes = []
    for chain, namespaces, pattern in walk(get_resolver().url_patterns):
        template, path = concrete_path(chain, pattern.callback, world)
        name = ":".join([*namespaces, pattern.name]) if pattern.name else template
        routes.append(Route(name, path, pattern.callback, PER_USER_NAMESPACE in namespaces))
    return [route for route in routes if route.name not in SKIPPED]


def get_from_django(asgi, path: str, headers: dict[str, str]) -> Answer:
    """GET `path` through the gateway with its cache emptied first, so that Django answers."""
    purge.everything()
    response = asgi.get(path, headers=headers)
    return Answer(
        status=response.status_code,
        location=response.headers.get("location"),
        body=response.content,
        cache_control=", ".join(response.headers.get_list("cache-control")),
        x_cache=response.headers.get("x-cache"),
    )


def credentials(user) -> dict[str, dict[str, str]]:
    """Headers that authenticate as `user`: a Bearer JWT (the API), a session (pages, admin)."""
    browser = Client()
    browser.force_login(user)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    # A browser that has been here before also holds its CSRF cookie, so no answer sets a new one
    # (a Set-Cookie alone would keep it out of the gateway's cache).
    csrf = get_random_string(32)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session}; {settings.CSRF_COOKIE_NAME}={csrf}"
    return {
        "bearer": {"Authorization": f"Bearer {token_pair_for(user)['access']}"},
        "session": {"Cookie": cookie},
    }


def ask_everyone(asgi, route: Route, world: World) -> dict[tuple[str, str], Answer]:
    """Return the route's answers by (credential, who): A and B by each credential, and anon."""
    answers = {("none", "anonymous"): get_from_django(asgi, route.path, {})}
    for who, user in (("A", world.alice), ("B", world.bob)):
        for kind, headers in credentials(user).items():
            answers[(kind, who)] = get_from_django(asgi, route.path, headers)
    return answers


def differs_between_users(answers: dict, kind: str) -> bool:
    return answers[(kind, "A")].content != answers[(kind, "B")].content


def offences(route: Route, answers: dict) -> list[str]:
    """Describe each answer that must be personal and is not.

    Personal are: every answer of a route that is per-user by design, and, by each credential,
    A's and B's answers whenever they differ (a shared cache keys on the URL, not on the user).
    """
    must_be_personal = {key: route.per_user for key in answers}
    for kind in CREDENTIALS:
        differs = differs_between_users(answers, kind)
        must_be_personal[(kind, "A")] |= differs
        must_be_personal[(kind, "B")] |= differs
    why = "per-user by design" if route.per_user else "A and B got different answers"
    return [
        f"GET {route.path} ({route.name}) as {who} by {kind}: {answer.status}, "
        f"Cache-Control: {answer.cache_control!r} ({why})"
        for (kind, who), answer in answers.items()
        if must_be_personal[(kind, who)] and not answer.personal
    ]


def unreachable(routes: list[Route]) -> list[str]:
    """The routes whose concrete path resolves to another view than their own."""
    return [route.name for route in routes if resolve(route.path).func is not route.callback]


def told_apart(routes: list[Route], answers: dict) -> set[str]:
    return {route.name for route in routes if differs_between_users(answers[route], "bearer")}


def owner_statuses(routes: list[Route], answers: dict) -> dict[str, int]:
    """A's status, by Bearer JWT, on each of the per-user reads."""
    return {r.name: answers[r][("bearer", "A")].status for r in routes if r.name in PER_USER_READS}


@pytest.fixture
def world(asgi, redis_client) -> World:
    """Two staff users with their own drafts and preferences, and a row of every admin model.

    Both are staff, so that every route, the admin's included, shows each of them all it has:
    whatever differs between their answers differs by who they are.
    """
    users = get_user_model().objects
    alice = users.create_superuser("alice", password="alice-test-password")
    bob = users.create_superuser("bob", password="bob-test-password")
    shoes = make_category(slug="shoes", name="Shoes")
    product = make_product(category=shoes, slug="trail-runner", name="Trail Runner")
    make_category(slug="hats", name="Hats")
    Group.objects.create(name="editors")
    as_alice = {"Authorization": f"Bearer {token_pair_for(alice)['access']}"}
    as_bob = {"Authorization": f"Bearer {token_pair_for(bob)['access']}"}
    written = [
        asgi.post("/api/v1/drafts/", json={"title": "Alice's plan", "body": "a"}, headers=as_alice),
        asgi.post("/api/v1/drafts/", json={"title": "Bob's list", "body": "b"}, headers=as_bob),
        asgi.put("/api/v1/me/preferences/", json={"categories": ["shoes"]}, headers=as_alice),
        asgi.post("/api/v1/auth/logout/", json={"refresh": token_pair_for(bob)["refresh"]}),
    ]
    assert [response.status_code for response in written] == [201, 201, 200, 204]
    models = (get_user_model(), Group, Category, Product, OutstandingToken, BlacklistedToken)
    object_ids = {model: str(model.objects.order_by("pk").first().pk) for model in models}
    values = {
        "slug": product.slug,
        "product_id": str(product.id),
        "symbol": next(iter(market().opening)),
        # Alice's draft: one URL for both users, as a shared cache keys it (Bob's answer: 404).
        "draft_id": written[0].json()["id"],
        "unmatched": "no-such-endpoint/",
        "app_label": "catalog",
        "content_type_id": str(ContentType.objects.get_for_model(product).id),
        "object_id": str(product.id),  # admin/r/<content_type_id>/<object_id>/
        "id": str(alice.pk),  # admin/auth/user/<id>/password/
        "url": "no-such-admin-page/",
    }
    return World(alice=alice, bob=bob, values=values, object_ids=object_ids)


def test_every_per_user_answer_is_private_or_no_store(asgi, world):
    # Given every GET route of the project, each with a path that reaches it
    routes = project_routes(world)

    # When an anonymous client, A and B (by Bearer JWT and by session) ask each of them
    answers = {route: ask_everyone(asgi, route, world) for route in routes}

    # Then the check saw what it had to: every route, each answer from Django itself...
    assert len(routes) >= MIN_ROUTES, [route.name for route in routes]
    assert unreachable(routes) == []
    assert {route.name for route in routes} >= PER_USER_ROUTES
    assert {a.x_cache for route in routes for a in answers[route].values()} <= {
        None,  # the probes and /metrics, which the gateway leaves alone
        "MISS",
        "BYPASS",
    }
    # ... and it tells A from B where the project is personal by design
    assert owner_statuses(routes, answers) == dict.fromkeys(PER_USER_READS, 200)
    assert told_apart(routes, answers) >= PER_USER_READS
    # ... and no answer that depends on who asks may be kept by a shared cache
    offenders = [line for route in routes for line in offences(route, answers[route])]
    assert offenders == [], "per-user answers a shared cache may store:\n" + "\n".join(offenders)
