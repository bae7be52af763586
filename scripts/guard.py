#!/usr/bin/env python
"""Outlive a launcher, and stop what it started if it dies without stopping it (`kill -9`).

    python scripts/guard.py GRACE_SECONDS     started by scripts/dev.py's Processes, never by hand

Reads on stdin the process group of each child the launcher starts (one number a line; each child
leads its own session). "done" means the launcher stopped them itself: exit. End of input without
"done" means it died: SIGTERM each leader, give the groups GRACE_SECONDS between them, then SIGKILL
whatever of them still runs. A child's own shutdown (uvicorn's workers, Celery's pool) may hang;
Linux's PR_SET_PDEATHSIG reaches only the launcher's direct children, and only with one signal.
Standard library only, so that it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

PROC = Path("/proc")
POLL_SECONDS = 0.1


def group_is_running(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (a zombie awaiting its reaper does not)."""
    if not PROC.is_dir():  # no /proc: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def end_groups(groups: list[int], grace_seconds: float) -> None:
    """SIGTERM each group's leader, newest first; SIGKILL every group still running after grace."""
    # ProcessLookupError: gone already; PermissionError: the number is someone else's process now.
    for pgid in reversed(groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while any(map(group_is_running, groups)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    grace_seconds = float(argv[0])
    groups: list[int] = []
    for line in sys.stdin:
        if line.strip() == "done":
            return 0
        groups.append(int(line))
    end_groups(groups, grace_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
