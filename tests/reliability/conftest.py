"""Options of the reliability suite."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-scale",
        type=float,
        default=float(os.environ.get("CHAOS_SCALE", "1")),
        help="Size of the chaos run: 1 is the full run (50,000 messages, 100 FD001 engines); "
        "0.2 is the CI variant. Default from the CHAOS_SCALE environment variable.",
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
