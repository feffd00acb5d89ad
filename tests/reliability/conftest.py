"""Options of the reliability suite, and the summary lines its runs print."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

SUMMARIES = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-scale",
        type=float,
        default=float(os.environ.get("CHAOS_SCALE", "1")),
        help="Traffic of the full chaos run (`make chaos`): 1 is 50,000 messages for 400 "
        "assets plus 100 FD001 engines. Default from the CHAOS_SCALE environment variable.",
    )

    parser.addoption(
        "--resource-assets",
        type=int,
        default=100_000,
        help="Distinct assets of the resource-bound measurement (tests/reliability).",
    )


@pytest.fixture
def chaos_scale(request: pytest.FixtureRequest) -> float:
    return request.config.getoption("--chaos-scale")


@pytest.fixture
def summary_line(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print a run's summary line now (seen with -s) and again in the session's terminal
    summary, so `make test`, which captures output, shows it too."""
    lines = request.config.stash.setdefault(SUMMARIES, [])

    def record(line: str) -> None:
        print(f"\n{line}")
        lines.append(f"{request.node.name}: {line}")

    return record


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(SUMMARIES, [])
    if lines:
        terminalreporter.section("reliability summaries")
        for line in lines:
            terminalreporter.write_line(line)
