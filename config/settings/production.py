"""Settings for a deployment: every secret and host comes from the environment."""

from config import env
from config.settings.base import *  # noqa: F403

if not SECRET_KEY:
    env.fail("SECRET_KEY", "must be set in production (50+ random characters)")
if not env.is_set("ALLOWED_HOSTS"):
    env.fail("ALLOWED_HOSTS", "must be set in production (comma-separated host names)")
if SIMPLE_JWT["ALGORITHM"] == "HS256" and not env.is_set("JWT_SIGNING_KEY"):
    env.fail("JWT_SIGNING_KEY", "must be set in production (32+ random bytes), or use RS256 keys")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.boolean("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env.boolean("CSRF_COOKIE_SECURE", True)
