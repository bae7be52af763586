"""The JWT settings fail loudly: no default key in production, short keys, unknown algorithms."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import BASE_DIR, child_env


def import_settings(module: str, **environment: str) -> subprocess.CompletedProcess:
    env = child_env(SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.com", **environment)
    for name in ("JWT_SIGNING_KEY", "JWT_ALGORITHM"):
        if name not in environment:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("module", "environment", "message"),
    [
        (
            "config.settings.production",
            {},
            "JWT_SIGNING_KEY must be set in production (32+ random bytes), or use RS256 keys",
        ),
        (
            "config.settings.local",
            {"JWT_SIGNING_KEY": "too-short"},
            "JWT_SIGNING_KEY must be at least 32 bytes (e.g. `openssl rand -hex 32`)",
        ),
        (
            "config.settings.local",
            {"JWT_ALGORITHM": "none"},
            "JWT_ALGORITHM must be HS256 or RS256, got 'none'",
        ),
        (
            "config.settings.local",
            {"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY_FILE": "/nonexistent.pem"},
            "JWT_PRIVATE_KEY_FILE cannot be read (No such file or directory): '/nonexistent.pem'",
        ),
    ],
)
def test_bad_jwt_settings_stop_start_up_with_one_line(module, environment, message):
    result = import_settings(module, **environment)

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"Configuration error: {message}"]


def test_production_starts_with_a_real_signing_key():
    result = import_settings("config.settings.production", JWT_SIGNING_KEY="k" * 32)

    assert result.returncode == 0, result.stderr
