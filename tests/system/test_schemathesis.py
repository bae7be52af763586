"""The API fuzzed against its own OpenAPI schema (/api/schema/) by schemathesis, through daphne.

Every phase (examples, coverage, fuzzing, stateful: links inferred from Location headers and
the schema), every check, with a staff JWT and without one. A finding fails the test with
schemathesis's own report, which prints a curl command reproducing each failure.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from sessions_demo.tokens import token_pair_for
from tests import support

pytestmark = [pytest.mark.system]

# Bounded: the suite must stay fast on two cores. Fuzzing and stateful testing stop at this time
# budget (the other phases are short); examples per operation are capped as well.
MAX_SECONDS = int(os.environ.get("SCHEMATHESIS_MAX_SECONDS", "12"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "8"))

# The Server-Sent Events stream never ends: a fuzzer request to it would hang until its timeout.
# It is not in the schema (a plain Django view; the quote list's description documents it), and
# tests/quotes/test_sse.py and tests/system/test_quotes_stream.py check it; excluded here too, so
# that documenting it in the schema later cannot stall this test.
EXCLUDED_PATH = "/api/v1/quotes/stream/"
CONFIG = support.BASE_DIR / "tests" / "system" / "schemathesis.toml"


def schemathesis(base_url: str, report_dir: str, *headers: str) -> subprocess.CompletedProcess:
    argv = [
        str(support.BIN_DIR / "st"),
        f"--config-file={CONFIG}",
        "run",
        f"{base_url}/api/schema/",
        "--checks=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--max-examples={MAX_EXAMPLES}",
        f"--max-time={MAX_SECONDS}",
        f"--seed={SEED}",
        "--workers=1",
        "--request-timeout=10",
        "--generation-database=none",
        f"--exclude-path={EXCLUDED_PATH}",
        "--suppress-health-check=all",
        f"--report-dir={report_dir}",
        "--no-color",
        *(f"--header={header}" for header in headers),
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=MAX_SECONDS * 6, cwd=report_dir
    )


@pytest.fixture
def staff_token() -> str:
    user = get_user_model().objects.create_user("fuzz-admin", password="x", is_staff=True)
    return token_pair_for(user)["access"]


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_every_generated_request_as_its_schema_says(
    live_server_url, redis_client, staff_token, tmp_path
):
    call_command("seed_catalog", products=5)

    authenticated = schemathesis(
        live_server_url, str(tmp_path), f"Authorization: Bearer {staff_token}"
    )
    anonymous = schemathesis(live_server_url, str(tmp_path))

    assert authenticated.returncode == 0, authenticated.stdout + authenticated.stderr
    assert anonymous.returncode == 0, anonymous.stdout + anonymous.stderr
