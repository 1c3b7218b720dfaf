"""Print one line per fault campaign at the end of the run (episodes, confirmed, lost,
duplicated), whatever pytest captured."""

from __future__ import annotations

import pytest

LINES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("fault campaigns")
        for line in LINES:
            terminalreporter.write_line(line)
