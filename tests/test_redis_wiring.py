"""Where each Redis consumer's server is: REDIS_URL, or a variable each; the tests' own database."""

import pytest
from django.conf import settings

from config.redis_wiring import (
    RedisTarget,
    consumer_settings,
    db_number,
    kombu_url,
    parse,
    targets,
    with_db,
)

SENTINEL_URL = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,10.0.0.3:26380/mymaster/2"


def one_for_all(url: str) -> dict:
    return dict.fromkeys(("cache", "channels", "broker", "stores"), parse("REDIS_URL", url))


def test_with_db_replaces_the_database_of_a_tcp_url():
    assert with_db("redis://:pw@cache.internal:6380/2", 15) == "redis://:pw@cache.internal:6380/15"


def test_with_db_sets_the_database_of_a_unix_socket_url():
    assert with_db("unix:///srv/redis.sock", 3) == "unix:///srv/redis.sock?db=3"


def test_with_db_replaces_the_database_of_a_sentinel_url():
    assert with_db(SENTINEL_URL, 15) == SENTINEL_URL.removesuffix("/2") + "/15"


def test_a_sentinel_url_names_its_sentinels_master_database_and_password():
    target = parse("REDIS_URL", SENTINEL_URL)

    assert target == RedisTarget(
        variable="REDIS_URL",
        url=SENTINEL_URL,
        kind="sentinel",
        nodes=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380)),
        master_name="mymaster",
        db=2,
        password="s3cret",
    )
    assert "s3cret" not in target.describe()


def test_a_cluster_url_names_its_seed_nodes():
    target = parse("REDIS_URL", "redis+cluster://10.0.0.1:7000,10.0.0.2:7001")

    assert (target.kind, target.nodes) == ("cluster", (("10.0.0.1", 7000), ("10.0.0.2", 7001)))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("memcached://localhost", "must start with one of"),
        ("redis+sentinel://10.0.0.1:26379", "must end with /<master name>[/<db>]"),
        ("redis+sentinel://10.0.0.1:26379/mymaster/zero", "must end with /<master name>[/<db>]"),
        ("redis+sentinel://10.0.0.1:port/mymaster", "has a node that is not host[:port]"),
        ("redis+cluster://10.0.0.1:7000/0", "a Redis Cluster has one database"),
    ],
)
def test_a_malformed_url_stops_start_up_naming_its_variable(raw, problem):
    with pytest.raises(SystemExit) as stopped:
        parse("REDIS_STORES_URL", raw)

    assert str(stopped.value).startswith(f"Configuration error: REDIS_STORES_URL {problem}")


def test_each_consumer_follows_redis_url_unless_its_own_variable_is_set(monkeypatch):
    monkeypatch.setenv("REDIS_BROKER_URL", "redis://broker.internal:6379/0")

    found = targets("redis://localhost:6379/0")

    assert {consumer: target.url for consumer, target in found.items()} == {
        "cache": "redis://localhost:6379/0",
        "channels": "redis://localhost:6379/0",
        "broker": "redis://broker.internal:6379/0",
        "stores": "redis://localhost:6379/0",
    }


@pytest.mark.parametrize("variable", ["REDIS_URL", "REDIS_CHANNELS_URL"])
def test_a_cluster_for_a_consumer_that_cannot_use_one_stops_start_up(monkeypatch, variable):
    monkeypatch.setenv(variable, "redis+cluster://10.0.0.1:7000")

    with pytest.raises(SystemExit) as stopped:
        targets(
            "redis+cluster://10.0.0.1:7000" if variable == "REDIS_URL" else "redis://localhost/0"
        )

    assert str(stopped.value).startswith(f"Configuration error: {variable} names a Redis cluster")


def test_kombu_url_spells_a_unix_socket_the_way_kombu_expects():
    target = parse("REDIS_URL", "unix:///srv/redis.sock?db=4")

    assert kombu_url(target) == "redis+socket:///srv/redis.sock?virtual_host=4"


def test_kombu_url_keeps_a_tcp_url():
    assert kombu_url(parse("REDIS_URL", "redis://localhost:6379/1")) == "redis://localhost:6379/1"


def test_kombu_url_names_each_sentinel_with_the_data_nodes_password():
    assert kombu_url(parse("REDIS_URL", SENTINEL_URL)) == (
        "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://:s3cret@10.0.0.2:26379/2;"
        "sentinel://:s3cret@10.0.0.3:26380/2"
    )


def test_each_consumer_has_its_own_prefix_on_the_one_server():
    wiring = consumer_settings(one_for_all("redis://localhost:6379/0"), "sc", 1.0)

    prefixes = {
        wiring["CACHES"]["default"]["KEY_PREFIX"],
        wiring["CHANNEL_LAYERS"]["default"]["CONFIG"]["prefix"],
        wiring["CELERY_BROKER_TRANSPORT_OPTIONS"]["global_keyprefix"],
    }
    assert prefixes == {"sc:cache", "sc:asgi", "sc:celery:"}
    assert wiring["CACHES"]["default"]["LOCATION"] == "redis://localhost:6379/0"
    assert wiring["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == ["redis://localhost:6379/0"]


def test_with_sentinel_every_consumer_is_given_the_sentinels_and_the_master():
    wiring = consumer_settings(one_for_all(SENTINEL_URL), "sc", 1.0)

    cache = wiring["CACHES"]["default"]
    host = wiring["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"][0]
    broker = wiring["CELERY_BROKER_TRANSPORT_OPTIONS"]
    sentinels = [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380)]
    # The cache reads the primary only: a replica may lag behind the write it follows.
    assert cache["LOCATION"] == ["redis://mymaster/2"]
    assert (cache["OPTIONS"]["SENTINELS"], cache["OPTIONS"]["PASSWORD"]) == (sentinels, "s3cret")
    assert (host["sentinels"], host["master_name"], host["db"]) == (sentinels, "mymaster", 2)
    assert (broker["master_name"], broker["global_keyprefix"]) == ("mymaster", "sc:celery:")


def test_the_suite_uses_its_own_redis_database_and_prefix():
    assert db_number(settings.REDIS_URL) == settings.REDIS_TEST_DB
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert settings.CACHES["default"]["KEY_PREFIX"] == "test:cache"
    assert {target.db for target in settings.REDIS.values()} == {settings.REDIS_TEST_DB}


def test_the_cache_round_trips_through_the_real_redis(redis_client):
    from django.core.cache import cache

    cache.set("greeting", "hello", timeout=30)

    assert cache.get("greeting") == "hello"
    assert redis_client.exists("test:cache:1:greeting") == 1
