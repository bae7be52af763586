"""One REDIS_URL feeds every consumer, each on its own key prefix; tests get their own database."""

from django.conf import settings

from config.redis_wiring import consumer_settings, db_number, kombu_url, with_db


def test_with_db_replaces_the_database_of_a_tcp_url():
    assert with_db("redis://:pw@cache.internal:6380/2", 15) == "redis://:pw@cache.internal:6380/15"


def test_with_db_sets_the_database_of_a_unix_socket_url():
    assert with_db("unix:///srv/redis.sock", 3) == "unix:///srv/redis.sock?db=3"


def test_kombu_url_spells_a_unix_socket_the_way_kombu_expects():
    assert (
        kombu_url("unix:///srv/redis.sock?db=4") == "redis+socket:///srv/redis.sock?virtual_host=4"
    )


def test_kombu_url_keeps_a_tcp_url():
    assert kombu_url("redis://localhost:6379/1") == "redis://localhost:6379/1"


def test_each_consumer_has_its_own_prefix_on_the_one_server():
    wiring = consumer_settings("redis://localhost:6379/0", "sc", 1.0)

    prefixes = {
        wiring["CACHES"]["default"]["KEY_PREFIX"],
        wiring["CHANNEL_LAYERS"]["default"]["CONFIG"]["prefix"],
        wiring["CELERY_BROKER_TRANSPORT_OPTIONS"]["global_keyprefix"],
    }
    assert prefixes == {"sc:cache", "sc:asgi", "sc:celery:"}
    assert wiring["CACHES"]["default"]["LOCATION"] == "redis://localhost:6379/0"
    assert wiring["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == ["redis://localhost:6379/0"]


def test_the_suite_uses_its_own_redis_database_and_prefix():
    assert db_number(settings.REDIS_URL) == settings.REDIS_TEST_DB
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert settings.CACHES["default"]["KEY_PREFIX"] == "test:cache"


def test_the_cache_round_trips_through_the_real_redis(redis_client):
    from django.core.cache import cache

    cache.set("greeting", "hello", timeout=30)

    assert cache.get("greeting") == "hello"
    assert redis_client.exists("test:cache:1:greeting") == 1
