"""The README's curl examples, run against a live server: the docs cannot rot.

In a ```console block, a line starting with `$ ` is a command and the lines after it are what it
prints. `…` alone on a line stands for any number of lines; inside a line, for any text.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from django.core.management import call_command

from tests.missing_tools import needs
from tests.support import BASE_DIR

DOCUMENTED_BASE_URL = "http://127.0.0.1:8000"
ELLIPSIS = "…"


def console_examples(markdown: str) -> list[tuple[str, list[str]]]:
    """Return (command, expected output lines) for each `$ curl` in the console blocks."""
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^```console\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                examples.append((line[2:], []))
            elif examples:
                examples[-1][1].append(line)
    return [(command, expected) for command, expected in examples if command.startswith("curl ")]


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Return whether `actual` has the `expected` lines, in order, `…` standing for what varies."""
    position, skipping = 0, False
    for line in expected:
        if line == ELLIPSIS:
            skipping = True
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in line.split(ELLIPSIS)))
        while position < len(actual) and not pattern.fullmatch(actual[position]):
            if not skipping:
                return False
            position += 1
        if position == len(actual):
            return False
        position, skipping = position + 1, False
    return skipping or position == len(actual)


EXAMPLES = console_examples((BASE_DIR / "README.md").read_text())


def test_the_readme_has_curl_examples():
    assert len(EXAMPLES) >= 5


def test_the_matcher_rejects_output_the_readme_does_not_describe():
    expected = ["HTTP/1.1 200 OK", ELLIPSIS, '{"status": "ok"}']

    assert output_matches(expected, ["HTTP/1.1 200 OK", "Server: daphne", "", '{"status": "ok"}'])
    assert not output_matches(
        expected, ["HTTP/1.1 503 Service Unavailable", "", '{"status": "ok"}']
    )
    assert not output_matches(expected, ["HTTP/1.1 200 OK", "", '{"status": "down"}'])


@pytest.mark.django_db(transaction=True, reset_sequences=True)
@needs("curl")
def test_every_readme_example_in_order(live_server_url, redis_client):
    """Run the examples top to bottom, as a reader would: later ones build on earlier ones."""
    call_command("seed_catalog", products=30)  # the catalog `make run` seeds, smaller
    mismatches = []
    for command, expected in EXAMPLES:
        argv = [arg.replace(DOCUMENTED_BASE_URL, live_server_url) for arg in shlex.split(command)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        actual = result.stdout.replace("\r\n", "\n").splitlines()
        if result.returncode != 0 or not output_matches(expected, actual):
            mismatches.append(f"$ {command}\n" + "\n".join(actual) + result.stderr)

    assert mismatches == []
