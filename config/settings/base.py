"""Settings shared by every environment; each value that varies comes from config.env."""

from pathlib import Path

from config import env
from config.redis_wiring import consumer_settings

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
REDIS_URL = env.url(
    "REDIS_URL", f"unix://{VAR_DIR / 'redis' / 'redis.sock'}", schemes={"redis", "rediss", "unix"}
)
REDIS_KEY_PREFIX = env.string("REDIS_KEY_PREFIX", "sc")
# Seconds a Redis call may take before it counts as down: callers answer 503, never hang.
REDIS_TIMEOUT = 1.0

# CACHES, CHANNEL_LAYERS and the Celery broker, each under its own prefix of REDIS_KEY_PREFIX.
globals().update(consumer_settings(REDIS_URL, REDIS_KEY_PREFIX, REDIS_TIMEOUT))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

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
}

# --- Apps: each reads its own namespaced dict (defaults and meaning in the app's conf) ------------
CATALOG: dict = {}
SESSIONS_DEMO: dict = {}
QUOTES: dict = {}

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
