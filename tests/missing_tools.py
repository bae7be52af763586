"""A pytest plugin: skip a test whose tool this machine lacks, and say so in the run's last line.

The system and browser tests drive programs from Debian (nginx, chromium, curl, PostgreSQL's
server). Without one, its tests are skipped with a reason made by `missing_tool`, and the run
ends with one line that counts them and names the command that installs them all.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter

import pytest

INSTALL_COMMAND = "make test-deps"
_REASON = re.compile(r"missing tool: (\S+)")


def missing_tool(package: str) -> str:
    """Return the skip reason of a test that needs Debian's `package`."""
    return f"missing tool: {package} ({INSTALL_COMMAND} installs it)"


def needs(command: str, package: str | None = None) -> pytest.MarkDecorator:
    """Mark a test that runs `command`: skipped, with its reason, when it is not on PATH."""
    return pytest.mark.skipif(
        shutil.which(command) is None, reason=missing_tool(package or command)
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    # Here, not in pytest_terminal_summary: the line comes after pytest's own "N passed".
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if terminalreporter is None:
        return
    tools: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        if match := _REASON.search(reason):
            tools[match.group(1)] += 1
    if tools:
        names = ", ".join(sorted(tools))
        terminalreporter.write_line(
            f"{sum(tools.values())} tests skipped for a missing tool ({names}): "
            f"`{INSTALL_COMMAND}` installs them.",
            yellow=True,
            bold=True,
        )
