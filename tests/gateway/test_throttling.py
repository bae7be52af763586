"""The throttle: exact across processes, one Redis call, RateLimit headers, no forged dodging."""

import json
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings

from gateway.conf import DEFAULT_RATES, Rate, reset
from gateway.throttling import RUN_GCRA
from tests import support
from tests.support import BASE_DIR, child_env


@pytest.fixture
def rates(settings):
    """Set some policies' rates for one test, the others staying out of the way."""

    def set_rates(**rates: str) -> None:
        settings.GATEWAY = {**settings.GATEWAY, "RATES": {**settings.GATEWAY["RATES"], **rates}}

    return set_rates


def test_the_limit_is_admitted_then_429_with_retry_after(asgi, rates):
    rates(anon="3/min")

    responses = [asgi.get("/api/v1/no-such-thing/") for _ in range(4)]

    assert [r.status_code for r in responses] == [404, 404, 404, 429]
    assert [r.headers["ratelimit"] for r in responses[:3]] == [
        '"anon";r=2;t=20',
        '"anon";r=1;t=40',
        '"anon";r=0;t=60',
    ]
    refused = responses[3]
    assert refused.headers["ratelimit-policy"] == '"anon";q=3;w=60'
    assert refused.headers["retry-after"] == "20"
    assert refused.json() == {
        "detail": "Too many requests; retry in 20 s.",
        "code": "throttled",
        "retry_after": 20,
    }


def test_every_api_response_names_its_policies(asgi, rates):
    rates(anon="100/min", write="10/min")

    response = asgi.post("/api/v1/no-such-thing/", json={})

    assert response.headers["ratelimit-policy"] == '"anon";q=100;w=60, "write";q=10;w=60'
    assert response.headers["ratelimit"] == '"write";r=9;t=6'


def test_the_token_endpoint_has_its_own_strict_policy(asgi, rates, db):
    rates(auth="2/min")
    attempt = {"username": "alice", "password": "wrong"}

    statuses = [asgi.post("/api/v1/auth/token/", json=attempt).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


def test_signed_in_users_on_an_auth_path_share_their_address_s_auth_budget(asgi, rates, db):
    # Two identities, the user and the address: one script each (a Cluster slot each).
    from sessions_demo.tokens import token_pair_for
    from tests.sessions_demo.conftest import make_user

    rates(auth="2/min", user="100/min", write="50/min")
    tokens = [token_pair_for(make_user(name))["access"] for name in ("alice", "bob", "carol")]
    attempt = {"username": "alice", "password": "wrong"}

    responses = [
        asgi.post("/api/v1/auth/token/", json=attempt, headers={"Authorization": f"Bearer {t}"})
        for t in tokens
    ]

    assert [r.status_code for r in responses] == [401, 401, 429]
    assert responses[0].headers["ratelimit-policy"] == (
        '"user";q=100;w=60, "write";q=50;w=60, "auth";q=2;w=60'
    )
    assert responses[1].headers["ratelimit"] == '"auth";r=0;t=60'
    assert responses[2].json()["code"] == "throttled"


def test_a_forged_x_forwarded_for_does_not_dodge_the_limit(asgi, rates):
    rates(anon="2/min")

    statuses = [
        asgi.get("/api/v1/x/", headers={"X-Forwarded-For": f"10.0.0.{n}"}).status_code
        for n in range(3)
    ]

    assert statuses == [404, 404, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(asgi, rates, settings):
    rates(anon="1/min")
    settings.GATEWAY = {**settings.GATEWAY, "TRUSTED_PROXY_HOPS": 1}

    first = asgi.get("/api/v1/x/", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
    other_client = asgi.get("/api/v1/x/", headers={"X-Forwarded-For": "198.51.100.2"})
    first_again = asgi.get("/api/v1/x/", headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.1"})

    assert (first.status_code, other_client.status_code, first_again.status_code) == (404, 404, 429)


@pytest.mark.parametrize("forwarded", ["not-an-ip", "1.2.3.4, " * 200 + "1.2.3.4"])
def test_a_malformed_x_forwarded_for_is_a_400(asgi, settings, forwarded):
    settings.GATEWAY = {**settings.GATEWAY, "TRUSTED_PROXY_HOPS": 1}

    response = asgi.get("/api/v1/x/", headers={"X-Forwarded-For": forwarded})

    assert response.status_code == 400
    assert response.json()["code"] == "bad_forwarded_for"


def test_probes_and_static_files_are_not_throttled(asgi, rates):
    rates(anon="1/min")

    statuses = {asgi.get("/healthz").status_code for _ in range(3)}

    assert statuses == {200}


def test_with_redis_down_the_throttle_fails_open_by_default(asgi, settings):
    support.point_stores_at(settings, "redis://127.0.0.1:1/0")

    response = asgi.get("/api/v1/x/")

    assert response.status_code == 404
    assert "ratelimit" not in response.headers


def test_with_redis_down_a_closed_throttle_answers_503(asgi, settings):
    support.point_stores_at(settings, "redis://127.0.0.1:1/0")
    settings.GATEWAY = {**settings.GATEWAY, "THROTTLE_ON_REDIS_ERROR": "closed"}

    response = asgi.get("/api/v1/x/")

    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


def test_the_throttle_keys_follow_a_changed_key_prefix(asgi, rates, settings, redis_client):
    rates(anon="3/min")
    asgi.get("/api/v1/no-such-thing/")  # given: the prefix read (and kept) once
    settings.REDIS_KEY_PREFIX = "renamed"

    asgi.get("/api/v1/no-such-thing/")

    assert len(redis_client.keys("renamed:gw:rl:*")) == 1


def test_rates_come_from_the_environment_over_settings(monkeypatch, rates):
    rates(anon="5/min")
    monkeypatch.setenv("GATEWAY_RATE_ANON", "7/sec")
    reset()

    from gateway.conf import gateway_setting

    assert gateway_setting("RATES")["anon"] == Rate(limit=7, period=1)


def test_a_bad_rate_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("GATEWAY_RATE_WRITE", "lots")

    with pytest.raises(SystemExit) as stopped:
        from gateway.conf import rates

        rates({})

    assert str(stopped.value) == (
        "Configuration error: GATEWAY_RATE_WRITE must look like <count>/<sec|min|hour> "
        "with count >= 1, got 'lots'"
    )


def test_each_rate_variable_is_documented_in_env_example():
    documented = (BASE_DIR / ".env.example").read_text()

    assert all(f"# GATEWAY_RATE_{policy.upper()}=" in documented for policy in DEFAULT_RATES)


HAMMER = """
import asyncio, json, os, sys, time
import django
django.setup()
from gateway.conf import Rate
from gateway.throttling import Policy, decide

async def main(start_at, requests):
    await asyncio.sleep(max(0, start_at - time.time()))
    policy = [Policy("anon", "ip:hammered", Rate(30, 60))]
    decisions = await asyncio.gather(*(decide(policy) for _ in range(requests)))
    print(json.dumps(sum(d.admitted for d in decisions)))

asyncio.run(main(float(sys.argv[1]), int(sys.argv[2])))
"""


def test_two_processes_together_admit_exactly_the_limit(redis_client):
    start_at = time.time() + 2  # both processes fire at once, after they have both started
    env = child_env(
        DJANGO_SETTINGS_MODULE="config.settings.test", REDIS_URL=django_settings.REDIS_URL
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", HAMMER, str(start_at), "40"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    admitted = [json.loads(process.communicate(timeout=60)[0]) for process in processes]

    assert sum(admitted) == 30


def test_a_request_under_several_policies_costs_one_redis_call(asgi, rates, redis_client):
    rates(anon="100/min", write="10/min", auth="5/min")
    asgi.post("/api/v1/auth/token/", json={})  # given: this Redis has seen the script once

    def scripts_run() -> dict[str, int]:
        stats = redis_client.info("commandstats")
        return {
            name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha")
        }

    before = scripts_run()
    asgi.post("/api/v1/auth/token/", json={})  # a 400: nothing is purged, nothing cached
    after = scripts_run()

    # Counted by Redis itself: one EVALSHA for three policies, and never the script's text.
    assert {name: after[name] - before[name] for name in after} == {"eval": 0, "evalsha": 1}


def test_a_redis_without_the_script_still_throttles_and_then_has_it(asgi, rates, redis_client):
    rates(anon="2/min")
    redis_client.script_flush()

    responses = [asgi.get("/api/v1/no-such-thing/") for _ in range(3)]

    assert [r.status_code for r in responses] == [404, 404, 429]
    assert redis_client.script_exists(RUN_GCRA.sha) == [True]
