"""Read typed configuration from the environment; a bad value stops start-up with one clear line."""

from __future__ import annotations

import os
from typing import NoReturn
from urllib.parse import urlsplit

import dj_database_url
from dj_database_url import DBConfig

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def fail(name: str, problem: str) -> NoReturn:
    """Stop start-up, naming the variable and what is wrong with it."""
    # SystemExit rather than ImproperlyConfigured: the operator fixes an environment variable, and
    # one line naming it says more than a traceback through Django's settings loader.
    raise SystemExit(f"Configuration error: {name} {problem}")


def is_set(name: str) -> bool:
    """Return whether the variable is present in the environment."""
    return name in os.environ


def string(name: str, default: str) -> str:
    """Return the variable as a string, or the default when unset."""
    return os.environ.get(name, default)


def boolean(name: str, default: bool) -> bool:
    """Return the variable as a boolean (1/0, true/false, yes/no, on/off)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    fail(name, f"must be true or false, got {raw!r}")


def integer(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return the variable as an integer within the given bounds."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        fail(name, f"must be an integer, got {raw!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        fail(name, f"must be between {minimum} and {maximum}, got {value}")
    return value


def csv(name: str, default: list[str]) -> list[str]:
    """Return the variable as a list of comma-separated, non-empty items."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def url(name: str, default: str, *, schemes: set[str]) -> str:
    """Return the variable as a URL whose scheme is one of `schemes`."""
    return checked_url(name, os.environ.get(name, default), schemes=schemes)


def checked_url(name: str, raw: str, *, schemes: set[str]) -> str:
    """Return `raw`, the value of variable `name`, when it is a URL whose scheme is in `schemes`."""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        fail(name, f"is not a valid URL ({exc}): {raw!r}")
    if parts.scheme not in schemes:
        fail(name, f"must start with one of {', '.join(sorted(schemes))}://, got {raw!r}")
    if not (parts.hostname or parts.path):
        fail(name, f"names no host or socket path: {raw!r}")
    return raw


DATABASE_SCHEMES = {"sqlite", "postgres", "postgresql"}


def database(name: str, default: str) -> DBConfig:
    """Return the variable as a Django DATABASES entry (sqlite:///path or postgres://…)."""
    raw = url(name, default, schemes=DATABASE_SCHEMES)
    try:
        config = dj_database_url.parse(raw)
    except ValueError as exc:
        fail(name, f"is not a database URL Django can use ({exc}): {raw!r}")
    if not config.get("NAME"):
        fail(name, f"names no database: {raw!r}")
    return config
