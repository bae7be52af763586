"""The /quotes/ page: served with its own script, and live in a real browser (Debian's chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from config.redis_wiring import app_client
from quotes import keys, services
from tests import support
from tests.missing_tools import needs

T0 = 1_800_000_000.0


def test_the_page_lists_every_symbol_and_loads_its_own_script(quotes_settings, asgi):
    response = asgi.get("/quotes/")

    assert response.status_code == 200
    assert response.text.count('<tr data-symbol="') == 20
    assert '<script src="/static/quotes/quotes.js" defer></script>' in response.text
    assert "cdn" not in response.text.lower()
    assert asgi.get("/static/quotes/quotes.js").status_code == 200
    assert asgi.get("/static/quotes/quotes.css").status_code == 200


@pytest.fixture
def page(live_server_url) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=support.CHROMIUM, args=support.CHROMIUM_ARGS
        )
        page = browser.new_page(base_url=live_server_url)
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def tick(second: int) -> dict:
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(services.tick, now=T0 + second).result()


def acme(tick: dict) -> dict:
    return next(quote for quote in tick["quotes"] if quote["symbol"] == "ACME")


@pytest.mark.system
@pytest.mark.django_db(transaction=True)
@needs("chromium")
def test_the_page_shows_each_tick_and_resumes_after_a_dropped_connection(quotes_settings, page):
    page.goto("/quotes/")
    page.wait_for_selector('#quotes-connection[data-state="live"]')
    page.wait_for_function("window.quotesPage.lastSeq === 0")  # the snapshot

    first = tick(0)
    page.wait_for_function("window.quotesPage.lastSeq === 1")
    price_after_first = page.text_content('tr[data-symbol="ACME"] .price')
    # Drop the connection, and tick twice while the page is away.
    page.evaluate("window.quotesPage.socket.close()")
    page.wait_for_selector('#quotes-connection[data-state="reconnecting"]')
    missed = [tick(1), tick(2)]
    page.wait_for_function("window.quotesPage.lastSeq === 3")

    assert price_after_first == f"{acme(first)['price']:.2f}"
    newest = [acme(each) for each in missed if any(q["symbol"] == "ACME" for q in each["quotes"])]
    assert page.text_content('tr[data-symbol="ACME"] .price') == f"{newest[-1]['price']:.2f}"
    assert page.text_content("#quotes-seq") == "3"
    assert int(page.text_content("#delay-count")) == 3
    assert app_client().hget(keys.meta(), "seq") == "3"
