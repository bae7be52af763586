"""Every environment variable the code reads is documented in .env.example."""

import re

from tests.support import BASE_DIR

READS = re.compile(
    r"""(?:env\.\w+\(|environ\.get\(|environ\[|is_set\(|getenv\()\s*["']([A-Z][A-Z0-9_]+)["']"""
)
SOURCE_DIRS = ["config", "catalog", "sessions_demo", "quotes", "gateway", "scripts"]


def variables_read_by_the_code() -> set[str]:
    names = set()
    for directory in SOURCE_DIRS:
        for path in (BASE_DIR / directory).rglob("*.py"):
            names.update(READS.findall(path.read_text()))
    return names


def documented_variables() -> set[str]:
    text = (BASE_DIR / ".env.example").read_text()
    return set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_every_variable_the_code_reads_is_in_env_example():
    read = variables_read_by_the_code()

    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PORT", "HOST"} <= read
    assert read - documented_variables() == set()
