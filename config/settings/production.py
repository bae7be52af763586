"""Settings for a deployment: every secret and host comes from the environment."""

from config import env
from config.settings.base import *  # noqa: F403

if not SECRET_KEY:
    env.fail("SECRET_KEY", "must be set in production (50+ random characters)")
if not env.is_set("ALLOWED_HOSTS"):
    env.fail("ALLOWED_HOSTS", "must be set in production (comma-separated host names)")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.boolean("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env.boolean("CSRF_COOKIE_SECURE", True)
