"""The REST reads: latest quotes and history, public for a second, ETag = seq, 304 on a match."""

from quotes import services

T0 = 1_800_000_000.0


def test_before_the_first_tick_every_symbol_is_at_its_opening_price(quotes_settings, asgi):
    response = asgi.get("/api/v1/quotes/")

    assert response.status_code == 200
    body = response.json()
    assert (body["seq"], body["ts"], len(body["quotes"])) == (0, None, 20)
    assert body["quotes"][0] == {
        "symbol": "ACME",
        "price": 100.0,
        "change": 0.0,
        "seq": 0,
        "ts": None,
    }
    assert response.headers["cache-control"] == "public, max-age=1"
    assert response.headers["etag"] == '"0"'


def test_the_list_shows_the_last_tick(quotes_settings, asgi):
    services.tick(now=T0)
    tick = services.tick(now=T0 + 1)

    body = asgi.get("/api/v1/quotes/").json()

    assert (body["seq"], body["ts"]) == (2, tick["ts"])
    moved = {quote["symbol"]: quote for quote in tick["quotes"]}
    assert [q for q in body["quotes"] if q["symbol"] in moved] == list(moved.values())


def test_a_quote_has_the_seq_of_its_last_move_as_etag(quotes_settings, asgi):
    tick = services.tick(now=T0)
    acme = next(quote for quote in tick["quotes"] if quote["symbol"] == "ACME")

    response = asgi.get("/api/v1/quotes/ACME/")

    assert response.status_code == 200
    assert response.json() == acme
    assert response.headers["etag"] == '"1"'
    assert response.headers["cache-control"] == "public, max-age=1"


def test_a_matching_etag_gets_a_304_with_the_caching_headers(quotes_settings, asgi):
    services.tick(now=T0)

    response = asgi.get("/api/v1/quotes/ACME/", headers={"If-None-Match": '"1"'})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"1"'
    assert response.headers["cache-control"] == "public, max-age=1"


def test_a_stale_etag_gets_the_new_quote(quotes_settings, asgi):
    services.tick(now=T0)

    response = asgi.get("/api/v1/quotes/ACME/", headers={"If-None-Match": '"0"'})

    assert response.status_code == 200
    assert response.json()["seq"] == 1


def test_the_max_age_comes_from_the_settings(quotes_settings, asgi):
    quotes_settings["CACHE_MAX_AGE"] = 3

    response = asgi.get("/api/v1/quotes/BOLT/")

    assert response.headers["cache-control"] == "public, max-age=3"


def test_an_unknown_symbol_is_a_json_404(quotes_settings, asgi):
    for path in ("/api/v1/quotes/NOPE/", "/api/v1/quotes/NOPE/history/"):
        response = asgi.get(path)

        assert response.status_code == 404
        assert response.json() == {"detail": "Unknown symbol 'NOPE'.", "code": "not_found"}


def test_history_lists_the_last_prices_oldest_first(quotes_settings, asgi):
    ticks = [services.tick(now=T0 + second) for second in range(6)]
    acme = [q for tick in ticks for q in tick["quotes"] if q["symbol"] == "ACME"]

    response = asgi.get("/api/v1/quotes/ACME/history/?limit=3")

    assert response.status_code == 200
    assert response.json() == {"symbol": "ACME", "quotes": acme[-3:]}
    assert response.headers["etag"] == f'"{acme[-1]["seq"]}"'
    assert response.headers["cache-control"] == "public, max-age=1"


def test_history_before_the_first_tick_is_the_opening_price(quotes_settings, asgi):
    body = asgi.get("/api/v1/quotes/BOLT/history/").json()

    assert body == {
        "symbol": "BOLT",
        "quotes": [{"symbol": "BOLT", "price": 42.5, "change": 0.0, "seq": 0, "ts": None}],
    }


def test_history_limit_is_bounded(quotes_settings, asgi):
    quotes_settings["HISTORY_LIMIT_MAX"] = 50

    too_many = asgi.get("/api/v1/quotes/ACME/history/?limit=51")
    zero = asgi.get("/api/v1/quotes/ACME/history/?limit=0")

    assert too_many.status_code == 400
    assert too_many.json() == {
        "detail": "Invalid input.",
        "code": "invalid",
        "errors": {"limit": ["Ensure this value is less than or equal to 50."]},
    }
    assert zero.status_code == 400
    assert zero.json()["errors"] == {"limit": ["Ensure this value is greater than or equal to 1."]}


def test_the_stream_route_is_not_taken_for_a_symbol(quotes_settings, asgi):
    response = asgi.get("/api/v1/quotes/stream/?symbols=NOPE")

    assert response.status_code == 400
    assert response.json() == {"detail": "Unknown symbols: NOPE.", "code": "unknown_symbol"}


def test_the_api_docs_describe_the_streams(asgi):
    schema = asgi.get("/api/schema/?format=json").json()

    description = schema["paths"]["/api/v1/quotes/"]["get"]["description"]
    assert "/ws/quotes/" in description
    assert "Last-Event-ID" in description
    assert "/api/v1/quotes/{symbol}/history/" in schema["paths"]
