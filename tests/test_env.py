"""Configuration comes from the environment, and a bad value stops start-up with one clear line."""

import subprocess
import sys

import pytest

from config import env
from tests.support import BASE_DIR, child_env


def test_integer_reads_a_number(monkeypatch):
    monkeypatch.setenv("PORT", " 8123 ")

    assert env.integer("PORT", 8000) == 8123


def test_integer_names_the_variable_when_not_a_number(monkeypatch):
    monkeypatch.setenv("PORT", "eighty")

    with pytest.raises(SystemExit) as stopped:
        env.integer("PORT", 8000)

    assert str(stopped.value) == "Configuration error: PORT must be an integer, got 'eighty'"


def test_integer_enforces_bounds(monkeypatch):
    monkeypatch.setenv("PORT", "70000")

    with pytest.raises(SystemExit) as stopped:
        env.integer("PORT", 8000, minimum=1, maximum=65535)

    assert str(stopped.value) == "Configuration error: PORT must be between 1 and 65535, got 70000"


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("0", False), ("Yes", True), ("off", False)]
)
def test_boolean_accepts_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("DEBUG", raw)

    assert env.boolean("DEBUG", not expected) is expected


def test_boolean_rejects_anything_else(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")

    with pytest.raises(SystemExit) as stopped:
        env.boolean("DEBUG", False)

    assert str(stopped.value) == "Configuration error: DEBUG must be true or false, got 'maybe'"


def test_csv_drops_blanks(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "example.com, ,api.example.com,")

    assert env.csv("ALLOWED_HOSTS", []) == ["example.com", "api.example.com"]


def test_unset_variables_take_their_defaults(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("DEBUG", raising=False)

    assert (env.integer("PORT", 8000), env.boolean("DEBUG", True)) == (8000, True)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("redis://localhost:notaport/0", "is not a valid URL"),
        ("http://localhost:6379", "must start with one of redis, rediss, unix://"),
        ("redis://", "names no host or socket path"),
    ],
)
def test_url_names_the_variable_and_the_problem(monkeypatch, raw, problem):
    monkeypatch.setenv("REDIS_URL", raw)

    with pytest.raises(SystemExit) as stopped:
        env.url("REDIS_URL", "", schemes={"redis", "rediss", "unix"})

    assert str(stopped.value).startswith(f"Configuration error: REDIS_URL {problem}")


def test_database_parses_postgres(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://app:secret@db.internal:5433/shop")

    config = env.database("DATABASE_URL", "")

    assert (config["ENGINE"], config["NAME"], config["HOST"], config["PORT"], config["USER"]) == (
        "django.db.backends.postgresql",
        "shop",
        "db.internal",
        5433,
        "app",
    )


@pytest.mark.parametrize("raw", ["nonsense", "mysql://root@localhost/shop", "postgres://host/"])
def test_database_rejects_what_the_project_cannot_use(monkeypatch, raw):
    monkeypatch.setenv("DATABASE_URL", raw)

    with pytest.raises(SystemExit) as stopped:
        env.database("DATABASE_URL", "")

    assert str(stopped.value).startswith("Configuration error: DATABASE_URL ")


def run_python(*args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=child_env(**environment),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_database_url_stops_manage_py_with_one_line():
    result = run_python(
        "manage.py",
        "check",
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATABASE_URL="nonsense",
    )

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: DATABASE_URL must start with one of postgres, postgresql, sqlite://, "
        "got 'nonsense'"
    ]


def test_bad_port_stops_the_launcher_with_one_line(tmp_path):
    result = run_python("scripts/dev.py", "run", PORT="80a", VAR_DIR=str(tmp_path))

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: PORT must be an integer, got '80a'"
    ]


def test_an_unknown_server_stops_the_launcher_with_one_line(tmp_path):
    result = run_python("scripts/dev.py", "run", SERVER="nginx", VAR_DIR=str(tmp_path))

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: SERVER must be one of uvicorn, granian, daphne, got 'nginx'"
    ]


def test_production_refuses_to_start_without_a_secret_key():
    environment = child_env(DJANGO_SETTINGS_MODULE="config.settings.production")
    environment.pop("SECRET_KEY", None)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: SECRET_KEY must be set in production (50+ random characters)"
    ]
