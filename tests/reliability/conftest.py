"""The reliability suite prints one line per scenario with its figures at the end of the run."""

from __future__ import annotations

from typing import Any

SCENARIO_LINES: list[str] = []


def report(scenario: str, **figures: Any) -> None:
    SCENARIO_LINES.append(f"{scenario}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCENARIO_LINES:
        terminalreporter.section("reliability")
        for line in SCENARIO_LINES:
            terminalreporter.write_line(line)
