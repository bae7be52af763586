"""Settings for the conformance harness: the gateway's, on a Redis of the run's own."""

from config.settings.base import *  # noqa: F403

SECRET_KEY = "conformance-only"
REDIS_KEY_PREFIX = "conformance"
