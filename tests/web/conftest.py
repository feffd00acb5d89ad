"""Workers for the web tests, each on its own topics, group and bucket.

`web_worker`: HTTP ingestion with an API key and a small body limit, and rate limits
low enough for tests/web/test_rate_limits.py to exceed. `api_worker`: the fuzzed one,
serving a copy of the shipped models (nothing it is asked to activate or train touches
the checkout) with the rate limits off, so that generated traffic is judged on its
content alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.classes import TURBOFANS
from tests.support.ops import running_model_worker, running_worker
from tests.support.worker import WorkerProcess

API_KEY = "test-key-7f3a9c"
MAX_BODY = 4096
PREDICT_BURST = 3
PREDICT_PER_S = 0.2  # a token every 5 s: a burst stays refused for the whole test
TELEMETRY_BURST = 20  # the ingestion tests send fewer
TELEMETRY_PER_S = 1.0
API_MAX_BODY = 256 * 1024


@pytest.fixture(scope="package")
def web_worker(
    kafka_broker: str,
    s3_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    with running_worker(
        kafka_broker,
        s3_server,
        tmp_path_factory.mktemp("web-worker"),
        artifacts_dir / "web-worker.log",
        API_KEY=API_KEY,
        HTTP_MAX_BODY_BYTES=str(MAX_BODY),
        HTTP_RATE_PREDICT_PER_S=str(PREDICT_PER_S),
        HTTP_RATE_PREDICT_BURST=str(PREDICT_BURST),
        HTTP_RATE_TELEMETRY_PER_S=str(TELEMETRY_PER_S),
        HTTP_RATE_TELEMETRY_BURST=str(TELEMETRY_BURST),
    ) as started:
        yield started


@pytest.fixture(scope="package")
def api_worker(
    kafka_broker: str,
    s3_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    with running_model_worker(
        kafka_broker, s3_server, tmp_path_factory.mktemp("api-worker"),
        artifacts_dir / "api-worker.log", API_KEY=API_KEY,
        # One class (every asset a turbofan): every record the fuzzing makes up has a model.
        ASSET_CLASSES=str(TURBOFANS),
        HTTP_MAX_BODY_BYTES=str(API_MAX_BODY), HTTP_RATE_PREDICT_PER_S="0",
        HTTP_RATE_TRAIN_PER_S="0", HTTP_RATE_TELEMETRY_PER_S="0", BUFFER_FLUSH_INTERVAL="1",
    ) as started:  # fmt: skip
        yield started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzzing's numbers, when tests/web/test_api_fuzz.py ran in this session."""
    fuzz = sys.modules.get("tests.web.test_api_fuzz")
    if fuzz is not None and fuzz.RUN.cases:
        terminalreporter.write_line(fuzz.RUN.summary())
