"""Settings for the test suite: its own Redis database number and key prefix, a throwaway DB."""

import os
import tempfile

from config import env
from config.redis_wiring import consumer_settings, parse, with_db
from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = SECRET_KEY or "django-insecure-test-only"
SERVE_STATIC = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, and only ever in tests

# Never clobber a developer's running demo on the same Redis: another database, another prefix.
REDIS_TEST_DB = env.integer("REDIS_TEST_DB", 15, minimum=0, maximum=15)
REDIS_URL = with_db(REDIS_URL, REDIS_TEST_DB)
REDIS = {
    consumer: parse(target.variable, with_db(target.url, REDIS_TEST_DB))
    for consumer, target in REDIS.items()
}
REDIS_KEY_PREFIX = "test"
globals().update(consumer_settings(REDIS, REDIS_KEY_PREFIX, REDIS_TIMEOUT))

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that a server process started by a test can open the same database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(
            tempfile.gettempdir(), f"stateless-cacheable-test-{os.getpid()}.sqlite3"
        )
    }

# Tests send far more requests a minute than any person: policies under test set their own rates.
GATEWAY = {
    "METRICS_FLUSH_SECONDS": 0,
    "RATES": {policy: "1000000/sec" for policy in ("anon", "user", "auth", "write", "connect")},
}
