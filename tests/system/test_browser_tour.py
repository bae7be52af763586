"""The demo site in Debian's Chromium, through nginx and two instances, as a user sees it.

A screenshot of each page is kept in var/artifacts/browser/ (CI keeps it as a test artifact).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests import support
from tests.missing_tools import needs
from tests.system.conftest import PASSWORD

ARTIFACTS = support.BASE_DIR / "var" / "artifacts" / "browser"

pytestmark = [
    pytest.mark.system,
    needs("chromium"),
]


@pytest.fixture
def page(cluster) -> Iterator:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=support.CHROMIUM, headless=True, args=support.CHROMIUM_ARGS
        )
        page = browser.new_page(base_url=cluster.base_url)
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_browse_the_catalog_log_in_autosave_a_draft_watch_quotes_and_the_gateway(page):
    from playwright.sync_api import expect

    # The catalog: a list, a category, a product with its caching headers.
    page.goto("/catalog/")
    expect(page.locator("h1")).to_have_text("All products")
    shot(page, "catalog")
    page.locator("td a").first.click()
    expect(page.locator("body")).to_contain_text("Cache-Control")
    shot(page, "product")

    # Log in, create a draft and watch it save itself (If-Match, a new version each time).
    page.goto("/drafts/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button")
    expect(page.locator("#whoami")).to_have_text("Signed in as alice")
    page.click("#new-draft")
    expect(page.locator("#draft-title")).to_have_value("Untitled draft")
    page.fill("#draft-title", "Through the load balancer")
    expect(page.locator("#save-state")).to_have_text("Saved · version 2")
    page.fill("#draft-body", "Every save may land on the other instance.")
    expect(page.locator("#save-state")).to_have_text("Saved · version 3")
    shot(page, "drafts")

    # Live quotes: the cluster's beat ticks once a second and the page shows each tick it is
    # pushed, through nginx's WebSocket upgrade: watch it update three times.
    page.goto("/quotes/")
    expect(page.locator("#quotes-connection")).to_have_attribute("data-state", "live")
    page.wait_for_function("window.quotesPage.lastSeq !== null")  # the snapshot
    first_seq = page.evaluate("window.quotesPage.lastSeq")
    page.wait_for_function(f"window.quotesPage.lastSeq >= {first_seq + 3}")
    expect(page.locator("#quotes-seq")).not_to_have_text(str(first_seq))
    assert int(page.text_content("#delay-count")) >= 3  # one delay per tick the page received
    expect(page.locator('tr[data-symbol="ACME"] .price')).to_have_text(re.compile(r"^\d+\.\d\d$"))
    shot(page, "quotes")

    # The gateway dashboard draws its four charts from the cluster-wide metrics.
    page.goto("/gateway/")
    expect(page.locator("canvas[data-chart]")).to_have_count(4)
    shot(page, "gateway")

    saved = {path.name for path in ARTIFACTS.glob("*.png")}
    assert {"catalog.png", "product.png", "drafts.png", "quotes.png", "gateway.png"} <= saved
