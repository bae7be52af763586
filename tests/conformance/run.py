#!/usr/bin/env python
"""Run the public HTTP caching suite against the gateway, with nginx's proxy_cache as the baseline.

    python tests/conformance/run.py [--only gateway|nginx] [--id TEST-ID]     (make conformance)

The suite is http-cache-tests (npm, the one behind cache-tests.fyi). Its origin server runs here;
in front of it, in turn, the gateway's own cache layers (tests/conformance/harness.py) under
uvicorn, and nginx configured as the suite's own nginx image is. The suite's CLI runs against each;
the table of results, by kind and by section, is printed and written to var/conformance/.

Exits non-zero when a required test fails for the gateway that tests/conformance/known_failures.txt
does not list (with its reason): a test that passed must go on passing. `--id` runs one test
against each cache and prints the requests and responses the suite saw, for debugging.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR / "scripts"))
sys.path.insert(0, str(BASE_DIR))

import cluster  # noqa: E402
import dev  # noqa: E402

SUITE_PACKAGE = "http-cache-tests@0.4.5"
CONFORMANCE_DIR = BASE_DIR / "tests" / "conformance"
KNOWN_FAILURES = CONFORMANCE_DIR / "known_failures.txt"
OUT_DIR = BASE_DIR / "var" / "conformance"
SUITE_DIR = OUT_DIR / "suite" / "node_modules" / "http-cache-tests"
CACHES = ("gateway", "nginx")
# What the suite's own nginx image runs (its docker/nginx/nginx.conf), with paths of this run's.
NGINX_CONF = """
daemon off;
{user}
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {run_dir}/tmp;
    proxy_temp_path {run_dir}/tmp;
    proxy_cache_path {run_dir}/cache levels=1:2 keys_zone=my-cache:8m max_size=1000m inactive=600m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{origin_port};
            proxy_cache my-cache;
            proxy_cache_revalidate on;
        }}
    }}
}}
"""
SUITE_TIMEOUT_SECONDS = 600
# How the suite's result for a test reads (its lib/display.mjs determineTestResult).
PASSED = {"pass", "yes"}


def say(message: str) -> None:
    print(f"[conformance] {message}", flush=True)


# --- tools ----------------------------------------------------------------------------------------


def apt_install(packages: list[str]) -> None:
    if not packages or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    say(f"installing {' '.join(packages)} (apt-get)")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=apt_env, check=False, **quiet)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=apt_env, **quiet)


def ensure_tools(caches: list[str]) -> None:
    """Install Node.js, npm and nginx from Debian when root and missing, then the suite from npm."""
    wanted = [("node", "nodejs"), ("npm", "npm")]
    if "nginx" in caches and not cluster.nginx_binary():
        wanted.append(("nginx", "nginx"))
    apt_install([package for command, package in wanted if not shutil.which(command)])
    if not shutil.which("node") or not shutil.which("npm"):
        raise SystemExit("[conformance] Node.js and npm are needed: apt-get install nodejs npm")
    if "nginx" in caches and not cluster.nginx_binary():
        raise SystemExit("[conformance] nginx is needed for the baseline: apt-get install nginx")
    installed = SUITE_DIR / "package.json"
    version = SUITE_PACKAGE.rpartition("@")[2]
    if not installed.exists() or json.loads(installed.read_text())["version"] != version:
        say(f"installing {SUITE_PACKAGE} (npm)")
        prefix = SUITE_DIR.parents[1]
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", SUITE_PACKAGE],
            check=True,
            stdout=subprocess.DEVNULL,
        )


# --- the servers ----------------------------------------------------------------------------------


def start_servers(processes: dev.Processes, run_dir: Path, caches: list[str]) -> dict[str, str]:
    """Start the suite's origin and each cache in front of it; return each cache's base URL."""
    origin_port, gateway_port, nginx_port = cluster.free_ports(3)
    suite_env = {
        **os.environ,
        "npm_config_protocol": "http",
        "npm_config_port": str(origin_port),
        "npm_config_pidfile": str(run_dir / "origin.pid"),
    }
    spawn(
        processes, "origin", ["node", str(SUITE_DIR / "server" / "server.mjs")], suite_env, run_dir
    )
    dev.wait_until(
        lambda: answers(f"http://127.0.0.1:{origin_port}/state/none"),
        timeout=30, what="the suite's origin", processes=processes,
    )  # fmt: skip
    bases = {}
    if "gateway" in caches:
        redis_url = dev.start_private_redis(processes, run_dir / "redis")
        argv = dev.server_argv(
            "uvicorn", "127.0.0.1", gateway_port, 1, "tests.conformance.harness:application"
        )
        # The origin's Date is relayed, as nginx relays it: a second one would make two.
        argv[-1:-1] = ["--no-date-header", "--no-server-header"]
        gateway_env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "CONFORMANCE_ORIGIN": f"http://127.0.0.1:{origin_port}",
            "DJANGO_SETTINGS_MODULE": "tests.conformance.settings",
            "PYTHONUNBUFFERED": "1",
        }
        spawn(processes, "gateway", argv, gateway_env, run_dir)
        bases["gateway"] = f"http://127.0.0.1:{gateway_port}"
    if "nginx" in caches:
        (run_dir / "tmp").mkdir()
        conf = run_dir / "nginx.conf"
        # As root, nginx's workers would run as nobody, who may not write this run's directory.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(user=user, run_dir=run_dir, port=nginx_port, origin_port=origin_port)
        )
        nginx = [cluster.nginx_binary(), "-p", str(run_dir), "-c", str(conf)]
        spawn(processes, "nginx", [*nginx, "-e", str(run_dir / "error.log")], os.environ, run_dir)
        bases["nginx"] = f"http://127.0.0.1:{nginx_port}"
    for name, base in bases.items():
        dev.wait_until(
            lambda base=base: answers(f"{base}/state/none"),
            timeout=30, what=name, processes=processes,
        )  # fmt: skip
    return bases


def spawn(
    processes: dev.Processes, name: str, argv: list[str], child_env: dict, run_dir: Path
) -> None:
    with open(run_dir / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            argv, env=child_env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=dev.die_with_parent, start_new_session=True,
        )  # fmt: skip
    processes.started.append((name, process))


def answers(url: str) -> bool:
    """Return whether anything answers HTTP at `url` (the origin's unknown state is a 404)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def run_suite(base: str, test_id: str = "") -> str:
    """Run the suite's CLI against `base`; return what it printed (JSON, or one test's dump)."""
    suite_env = {**os.environ, "npm_config_base": base, "npm_package_config_id": test_id}
    result = subprocess.run(
        ["node", "--no-warnings", "cli.mjs"], cwd=SUITE_DIR, env=suite_env,
        capture_output=True, text=True, timeout=SUITE_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0 or result.stderr.strip():
        raise SystemExit(f"[conformance] the suite failed against {base}:\n{result.stderr}")
    return result.stdout


# --- judging the results --------------------------------------------------------------------------


def list_tests() -> list[dict]:
    """Return the suite's tests: id, name, section, kind and dependencies (list_tests.mjs)."""
    listed = subprocess.run(
        ["node", str(CONFORMANCE_DIR / "list_tests.mjs"), str(SUITE_DIR)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(listed.stdout)


def outcomes(tests: list[dict], results: dict) -> dict[str, str]:
    """Judge each test as the suite's report does: a failed dependency fails its dependents."""
    by_id = {test["id"]: test for test in tests}
    judged: dict[str, str] = {}

    def judge(test_id: str) -> str:
        if test_id in judged:
            return judged[test_id]
        test, result = by_id[test_id], results.get(test_id)
        if result is None:
            outcome = "untested"
        elif any(judge(dependency) not in PASSED for dependency in test["depends_on"]):
            outcome = "dependency_fail"
        elif isinstance(result, list) and result[0] == "Setup":
            outcome = "retry" if result[1] == "retry" else "setup_fail"
        elif test["kind"] == "check":
            outcome = "yes" if result is True else "no"
        elif test["kind"] == "optimal":
            outcome = "pass" if result is True else "optional_fail"
        else:
            outcome = "pass" if result is True else "fail"
        judged[test_id] = outcome
        return outcome

    for test in tests:
        judge(test["id"])
    return judged


def read_known_failures() -> dict[str, str]:
    """Return {test id: why it fails} from known_failures.txt (`id: reason` lines, # comments)."""
    known = {}
    for line in KNOWN_FAILURES.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            test_id, _, reason = line.partition(":")
            known[test_id.strip()] = reason.strip()
    return known


def required_failures(tests: list[dict], judged: dict[str, str]) -> set[str]:
    """Required tests not passed: failed, not set up, or failing on a dependency."""
    return {t["id"] for t in tests if t["kind"] == "required" and judged[t["id"]] not in PASSED}


def report(tests: list[dict], judged_by_cache: dict[str, dict[str, str]]) -> str:
    """Return the results as Markdown tables: totals by kind, then required tests by section."""
    caches = list(judged_by_cache)
    rows = [
        ("required: passed", "required", {"pass"}),
        ("required: failed", "required", {"fail"}),
        ("required: set-up failed", "required", {"setup_fail", "retry"}),
        ("required: failed dependency", "required", {"dependency_fail"}),
        ("optional: passed", "optimal", {"pass"}),
        ("optional: failed (or not set up)", "optimal", {"optional_fail", "setup_fail", "retry",
                                                          "dependency_fail"}),
        ("informational: yes", "check", {"yes"}),
        ("informational: no (or not set up)", "check", {"no", "setup_fail", "retry",
                                                         "dependency_fail"}),
    ]  # fmt: skip
    lines = [f"| | {' | '.join(caches)} |", f"|---|{'---:|' * len(caches)}"]
    for label, kind, wanted in rows:
        counts = [
            sum(1 for t in tests if t["kind"] == kind and judged[t["id"]] in wanted)
            for judged in judged_by_cache.values()
        ]
        lines.append(f"| {label} | {' | '.join(str(n) for n in counts)} |")
    lines += ["", f"| section: passed / tests, required; optional; informational "
              f"| {' | '.join(caches)} |", f"|---|{'---:|' * len(caches)}"]  # fmt: skip
    for section in dict.fromkeys(t["section"] for t in tests):
        cells = []
        for judged in judged_by_cache.values():
            cell = []
            for kind, passed in (("required", {"pass"}), ("optimal", {"pass"}), ("check", {"yes"})):
                of_kind = [t for t in tests if t["section"] == section and t["kind"] == kind]
                ok = sum(1 for t in of_kind if judged[t["id"]] in passed)
                cell.append(f"{ok}/{len(of_kind)}" if of_kind else "-")
            cells.append("; ".join(cell))
        lines.append(f"| {section} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


# --- the run --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=CACHES, action="append", help="one cache (repeatable)")
    parser.add_argument("--id", default="", help="run one test, printing what the suite saw")
    args = parser.parse_args(argv)
    caches = args.only or list(CACHES)
    dev.die_with_parent()
    ensure_tools(caches)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="sc-conformance-"))
    processes = dev.Processes()
    results: dict[str, dict] = {}
    try:
        bases = start_servers(processes, run_dir, caches)
        for cache, base in bases.items():
            say(f"running the suite against {cache} ({base})")
            printed = run_suite(base, args.id)
            if args.id:
                print(printed)
                continue
            results[cache] = json.loads(printed)
            (OUT_DIR / f"{cache}-results.json").write_text(printed)
    finally:
        processes.stop_all()
        if not args.id:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            say(f"logs kept in {run_dir}")
    if args.id:
        return 0
    tests = list_tests()
    judged_by_cache = {cache: outcomes(tests, found) for cache, found in results.items()}
    table = report(tests, judged_by_cache)
    (OUT_DIR / "report.md").write_text(table)
    print(table)
    say(f"written to {OUT_DIR.relative_to(BASE_DIR)}/ (report.md, <cache>-results.json)")
    if "gateway" not in judged_by_cache:
        return 0
    return judge_gateway(tests, judged_by_cache)


def judge_gateway(tests: list[dict], judged_by_cache: dict[str, dict[str, str]]) -> int:
    """Fail on a required test the gateway fails that is not a known failure; list the mended."""
    judged = judged_by_cache["gateway"]
    known = read_known_failures()
    failing = required_failures(tests, judged)
    counts = Counter(judged[test_id] for test_id in failing)
    say(f"gateway: {len(failing)} required tests not passed ({dict(counts)}), {len(known)} known")
    if "nginx" in judged_by_cache:
        say(f"nginx:   {len(required_failures(tests, judged_by_cache['nginx']))} not passed")
    for test_id in sorted(known.keys() - failing):
        say(f"now passes, take it off {KNOWN_FAILURES.name}: {test_id}")
    unexpected = sorted(failing - known.keys())
    for test_id in unexpected:
        say(f"REGRESSION: {test_id} is {judged[test_id]}: {results_detail(test_id)}")
    return 1 if unexpected else 0


def results_detail(test_id: str) -> str:
    found = json.loads((OUT_DIR / "gateway-results.json").read_text()).get(test_id)
    return "passed itself; a dependency failed" if found is True else json.dumps(found)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
