"""The demo page in a real browser: log in, autosave with If-Match, a visible 412, the feed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from catalog.models import Category, Product
from tests import support
from tests.missing_tools import needs
from tests.sessions_demo.conftest import PASSWORD, make_user

pytestmark = [
    pytest.mark.system,
    pytest.mark.django_db(transaction=True),
    needs("chromium"),
]


@pytest.fixture
def shoes(transactional_db) -> None:
    category = Category.objects.create(slug="shoes", name="Shoes")
    Product.objects.create(
        sku="S-1", slug="red-shoe", name="Red Shoe", price=Decimal("59.00"), category=category
    )


@pytest.fixture
def page(live_server_url) -> Iterator:
    # Created before the browser starts: Playwright's sync API runs an event loop in this thread,
    # and Django refuses database calls made while one is running.
    make_user("alice")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=support.CHROMIUM, args=support.CHROMIUM_ARGS
        )
        page = browser.new_page(base_url=live_server_url)
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def test_the_demo_pages_autosave_show_a_conflict_and_read_the_feed(
    shoes, page, live_server_url, redis_client
):
    from playwright.sync_api import expect

    page.goto("/drafts/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button")
    expect(page.locator("#whoami")).to_have_text("Signed in as alice")

    # A new draft, then an edit that saves itself with If-Match.
    page.click("#new-draft")
    expect(page.locator("#draft-title")).to_have_value("Untitled draft")
    page.fill("#draft-title", "From the browser")
    expect(page.locator("#save-state")).to_have_text("Saved · version 2")

    # Someone else (another tab, another instance) edits the same draft meanwhile.
    with httpx.Client(base_url=live_server_url, timeout=10) as http:
        login = {"username": "alice", "password": PASSWORD}
        token = http.post("/api/v1/auth/token/", json=login).json()["access"]
        headers = {"Authorization": f"Bearer {token}"}
        (draft,) = http.get("/api/v1/drafts/", headers=headers).json()
        http.patch(
            f"/api/v1/drafts/{draft['id']}/",
            json={"title": "From elsewhere"},
            headers={**headers, "If-Match": '"2"'},
        )

    page.fill("#draft-body", "My words")
    expect(page.locator("#conflict")).to_be_visible()
    expect(page.locator("#conflict")).to_contain_text("412 Precondition Failed")
    expect(page.locator("#save-state")).to_have_text("Not saved")

    page.click("#load-theirs")
    expect(page.locator("#draft-title")).to_have_value("From elsewhere")
    expect(page.locator("#conflict")).to_be_hidden()

    page.click("#delete-draft")
    expect(page.locator("#editor")).to_be_hidden()
    expect(page.locator("#draft-list li")).to_have_count(0)

    # Moving to the feed keeps the in-memory tokens; logging out forgets them.
    page.click("a[data-route][href='/feed/']")
    expect(page.locator("#feed-summary")).to_have_text("0 draft(s) · following no categories yet")
    page.check("#category-choices input[value=shoes]")
    page.click("#prefs-form button")
    expect(page.locator("#feed-summary")).to_have_text("0 draft(s) · following shoes")
    expect(page.locator("#feed-products li")).to_have_text(["Red Shoe (shoes) 59.00 EUR"])
    page.click("#logout")
    expect(page.locator("#view-login")).to_be_visible()
