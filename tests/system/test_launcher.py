"""The launcher behind `make run` starts a private Redis and the demo, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import support

pytestmark = pytest.mark.system


def children_of(pid: int) -> dict[int, str]:
    """Return {pid: command line} of the live processes whose parent is `pid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields["PPid"]) == pid and not fields["State"].startswith("Z"):
            found[int(entry.name)] = cmdline
    return found


def is_running(pid: int) -> bool:
    """Return whether `pid` is a live process (a zombie awaiting its reaper counts as gone)."""
    try:
        return not Path(f"/proc/{pid}/status").read_text().split("State:\t")[1].startswith("Z")
    except (OSError, IndexError):
        return False


def descendants_of(pid: int) -> dict[int, str]:
    """Return {pid: command line} of `pid`'s live children, their children, and so on."""
    found = children_of(pid)
    for child in list(found):
        found.update(descendants_of(child))
    return found


@dataclass
class Demo:
    process: subprocess.Popen
    base_url: str
    var_dir: Path
    log: Path
    children: dict[int, str]


@pytest.fixture
def demo(tmp_path) -> Iterator[Demo]:
    """Run `scripts/dev.py run` as `make run` does, with no REDIS_URL, in a throwaway VAR_DIR."""
    port = support.free_port()
    env = support.child_env(PORT=str(port), HOST="127.0.0.1", VAR_DIR=str(tmp_path / "var"))
    for name in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    log = tmp_path / "launcher.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "scripts/dev.py", "run"],
            cwd=support.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        support.wait_for(
            lambda: process.poll() is not None or "Press Ctrl-C" in log.read_text(),
            timeout=90,
            what="the launcher to print its banner",
        )
        assert process.poll() is None, log.read_text()
        yield Demo(process, base_url, tmp_path / "var", log, descendants_of(process.pid))
    finally:
        support.stop(process)


def test_launcher_starts_a_private_redis_and_the_whole_demo(demo):
    commands = list(demo.children.values())  # and the children's own: uvicorn's workers

    socket_path = demo.var_dir / "redis" / "redis.sock"
    assert any("server" in command and str(socket_path) in command for command in commands), (
        commands
    )
    # uvicorn, with one worker process per core.
    [server] = [pid for pid, command in demo.children.items() if "bin/uvicorn" in command]
    assert f"--workers {os.cpu_count()}" in demo.children[server]
    workers = [c for c in children_of(server).values() if "multiprocessing.spawn" in c]
    assert len(workers) == os.cpu_count()
    assert any("celery" in command and " worker" in command for command in commands), commands
    assert sum("celery" in command and " beat" in command for command in commands) == 1, commands
    assert socket_path.is_socket()
    assert support.http_status(f"{demo.base_url}/readyz") == 200
    banner = demo.log.read_text()
    assert f"Stateless & Cacheable is running at {demo.base_url}/" in banner
    assert "alice  / alice-demo-password" in banner


def test_sigterm_stops_every_process_the_launcher_started(demo):
    demo.process.send_signal(signal.SIGTERM)
    demo.process.wait(timeout=30)

    assert still_running(demo.children) == {}
    assert demo.process.returncode == 0


def still_running(processes: dict[int, str]) -> dict[int, str]:
    return {pid: command for pid, command in processes.items() if is_running(pid)}


def still_running_after(timeout: float, processes: dict[int, str]) -> dict[int, str]:
    """Wait up to `timeout` seconds for `processes` to exit; return those still running then."""
    deadline = time.monotonic() + timeout
    while (running := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running


def test_a_killed_launcher_leaves_no_orphan(demo):
    os.kill(demo.process.pid, signal.SIGKILL)
    demo.process.wait(timeout=5)

    assert still_running_after(30, demo.children) == {}


# A child that ignores SIGTERM, as a hung shutdown does, and a grandchild PR_SET_PDEATHSIG never
# reaches; the launcher, once both are running, prints READY and waits to be killed.
STUBBORN_LAUNCHER = """
import signal, subprocess, sys, time
sys.path.insert(0, "scripts")
import dev
stubborn = "import os, signal as s, time; s.signal(s.SIGTERM, s.SIG_IGN); os.fork(); time.sleep(99)"
processes = dev.Processes(grace_seconds=1)
processes.start("stubborn", [sys.executable, "-c", stubborn], {})
time.sleep(0.5)
print("READY", flush=True)
time.sleep(600)
"""


def test_a_killed_launcher_s_children_that_ignore_sigterm_are_killed_after_the_grace():
    launcher = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_LAUNCHER],
        cwd=support.BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        assert launcher.stdout.readline() == "READY\n"
        started = descendants_of(launcher.pid)
        # The guard, the stubborn child and its fork.
        assert sum("SIG_IGN" in command for command in started.values()) == 2, started
        assert sum("guard.py" in command for command in started.values()) == 1, started

        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=5)

        assert still_running_after(15, started) == {}
    finally:
        support.stop(launcher)
