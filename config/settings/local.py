"""Settings for `make run` on a developer's machine."""

from config import env
from config.settings.base import *  # noqa: F403

DEBUG = env.boolean("DEBUG", True)
SECRET_KEY = SECRET_KEY or "django-insecure-local-only-never-use-in-production"
SERVE_STATIC = env.boolean("SERVE_STATIC", DEBUG)
