"""The home page introduces the case studies; admin and static files are served."""

import pytest
from channels.testing import WebsocketCommunicator


def test_home_page_links_each_case_study(asgi):
    response = asgi.get("/")

    assert response.status_code == 200
    for link in ('href="/catalog/"', 'href="/drafts/"', 'href="/quotes/"', 'href="/gateway/"'):
        assert link in response.text
    assert "The cacheable catalog" in response.text


def test_home_page_stylesheet_is_served(asgi):
    response = asgi.get("/static/css/site.css")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def test_admin_asks_for_a_login(asgi):
    response = asgi.get("/admin/")

    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login/?next=/admin/"


@pytest.mark.asyncio
async def test_websocket_from_a_foreign_origin_is_refused():
    from config.asgi import application

    communicator = WebsocketCommunicator(
        application,
        "/ws/quotes/",
        headers=[(b"origin", b"https://evil.example"), (b"host", b"127.0.0.1")],
    )

    connected, _ = await communicator.connect()

    assert connected is False
