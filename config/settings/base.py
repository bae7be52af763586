"""Settings shared by every environment; each value that varies comes from config.env."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext

from config import env
from config.redis_wiring import consumer_settings
from config.redis_wiring import targets as redis_targets

# Django's generic classes subscriptable at run time too, as the type hints write them
# (admin.ModelAdmin[Product]); DRF's classes and QuerySet are already.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(env.string("VAR_DIR", str(BASE_DIR / "var")))

# Empty here on purpose: local and test give a throwaway default, production refuses to start.
SECRET_KEY = env.string("SECRET_KEY", "")
DEBUG = env.boolean("DEBUG", False)
ALLOWED_HOSTS = env.csv("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "catalog",
    "sessions_demo",
    "quotes",
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that does not answer must give a 503, not a hang.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
else:
    # IMMEDIATE: a transaction takes SQLite's write lock when it begins, so a read-check-write
    # (If-Match) cannot interleave with another writer: what select_for_update gives PostgreSQL.
    DATABASES["default"].setdefault("OPTIONS", {}).update(transaction_mode="IMMEDIATE", timeout=20)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
# The ASGI app serves static files only when asked (local, test); production puts nginx there.
SERVE_STATIC = env.boolean("SERVE_STATIC", DEBUG)

# --- Redis: one server, each consumer under its own key prefix ------------------------------------
# One Redis for every consumer, or each on its own (config/redis_wiring.py says how to name them).
REDIS_URL = env.string("REDIS_URL", f"unix://{VAR_DIR / 'redis' / 'redis.sock'}")
REDIS = redis_targets(REDIS_URL)
REDIS_KEY_PREFIX = env.string("REDIS_KEY_PREFIX", "sc")
# Replicas that must hold a draft (and its Idempotency-Key record) before it is acknowledged.
REDIS_WAIT_REPLICAS = env.integer(
    "REDIS_WAIT_REPLICAS", 0 if REDIS["stores"].kind == "server" else 1, minimum=0, maximum=16
)
# Seconds a Redis call may take before it counts as down: callers answer 503, never hang.
REDIS_TIMEOUT = 1.0

# CACHES, CHANNEL_LAYERS and the Celery broker, each under its own prefix of REDIS_KEY_PREFIX.
globals().update(consumer_settings(REDIS, REDIS_KEY_PREFIX, REDIS_TIMEOUT))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
# The quotes demo ticks every second. Run exactly one beat; a second one (or a retried task) is
# harmless all the same: quotes.services.advance stores at most one tick per second.
CELERY_BEAT_SCHEDULE = {"quotes-tick": {"task": "quotes.tasks.tick", "schedule": 1.0}}

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # A Bearer JWT first (no DB query, no session); the admin's session still works for the catalog.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sessions_demo.authentication.JWTStatelessAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# --- JWT (simplejwt; sessions_demo): HS256 with a shared secret, or RS256 with a key pair --------
JWT_ALGORITHM = env.string("JWT_ALGORITHM", "HS256")


def _pem_file(name: str) -> str:
    path = env.string(name, "")
    if not path:
        env.fail(name, "must name a PEM file when JWT_ALGORITHM is RS256")
    try:
        return Path(path).read_text()
    except OSError as exc:
        env.fail(name, f"cannot be read ({exc.strerror}): {path!r}")


if JWT_ALGORITHM == "HS256":
    # A throwaway default for local and test; production.py refuses to start without a real key.
    _jwt_keys = (env.string("JWT_SIGNING_KEY", "insecure-jwt-key-for-local-and-tests-only"), "")
    if len(_jwt_keys[0].encode()) < 32:
        env.fail("JWT_SIGNING_KEY", "must be at least 32 bytes (e.g. `openssl rand -hex 32`)")
elif JWT_ALGORITHM == "RS256":
    _jwt_keys = (_pem_file("JWT_PRIVATE_KEY_FILE"), _pem_file("JWT_PUBLIC_KEY_FILE"))
else:
    env.fail("JWT_ALGORITHM", f"must be HS256 or RS256, got {JWT_ALGORITHM!r}")

SIMPLE_JWT: dict[str, Any] = {
    "ALGORITHM": JWT_ALGORITHM,
    "SIGNING_KEY": _jwt_keys[0],
    "VERIFYING_KEY": _jwt_keys[1],
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=env.integer("JWT_ACCESS_TOKEN_LIFETIME", 300, minimum=1)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env.integer("JWT_REFRESH_TOKEN_LIFETIME", 86400, minimum=1)
    ),
    "ISSUER": env.string("JWT_ISSUER", "stateless-cacheable"),
    "AUDIENCE": env.string("JWT_AUDIENCE", "stateless-cacheable-api"),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}

# Django's own CSRF page is HTML; under /api/ every error is JSON.
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"

SPECTACULAR_SETTINGS = {
    "TITLE": "Stateless & Cacheable",
    "DESCRIPTION": (
        "A reference application: when an API should be stateless, when it should be cacheable, "
        'and how a gateway enforces both. Every error is JSON `{"detail": …, "code": …}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get their own components, so required strings say minLength 1 as DRF checks.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.add_gateway_responses",  # the gateway's 400/401/429/503 and RateLimit
    ],
}

# --- Apps: each reads its own namespaced dict (defaults and meaning in the app's conf) ------------
CATALOG: dict[str, int] = {}
SESSIONS_DEMO: dict[str, int] = {
    # Logout also puts the access token's jti on a Redis deny-list, until the token would expire.
    "REVOKE_ACCESS_ON_LOGOUT": env.boolean("JWT_REVOKE_ACCESS_ON_LOGOUT", False),
}
QUOTES: dict[str, Any] = {}

# Seconds /readyz waits for all its checks together before it names the slow ones as down.
READINESS_TIMEOUT = 1.0

# --- Logging: JSON lines on stderr ----------------------------------------------------------------
LOG_LEVEL = env.string("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        # The gateway writes the one access line per request; Django's own would be a second.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
    },
}
