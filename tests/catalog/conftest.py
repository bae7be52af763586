"""Fixtures for the catalog: an empty app cache, and clients that may write."""

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from tests.catalog.factories import make_category, make_product
from tests.conftest import AsgiClient


@pytest.fixture(autouse=True)
def empty_app_cache(redis_client) -> Iterator[None]:
    """Each catalog test starts with an empty test Redis (the redis_client fixture flushes it)."""
    yield


@pytest.fixture
def shoes(db):
    return make_category(slug="shoes", name="Shoes")


@pytest.fixture
def product(shoes):
    return make_product(category=shoes, sku="SKU-SHOE-1", slug="trail-runner", name="Trail Runner")


class SessionAsgiClient(AsgiClient):
    """An AsgiClient logged in through a Django session, sending its CSRF token on writes."""

    def __init__(self, user) -> None:
        super().__init__()
        browser = Client()
        browser.force_login(user)
        csrf = get_token(RequestFactory().get("/"))
        self.cookies = {"sessionid": browser.cookies["sessionid"].value, "csrftoken": csrf}
        self.csrf = csrf

    def request(self, method: str, path: str, **kwargs):
        headers = {"X-CSRFToken": self.csrf, **kwargs.pop("headers", {})}
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return super().request(method, path, headers={**headers, "Cookie": cookie}, **kwargs)


@pytest.fixture
def staff_client(db) -> SessionAsgiClient:
    staff = get_user_model().objects.create_user("staffer", password="x", is_staff=True)
    return SessionAsgiClient(staff)


@pytest.fixture
def customer_client(db) -> SessionAsgiClient:
    customer = get_user_model().objects.create_user("customer", password="x")
    return SessionAsgiClient(customer)
