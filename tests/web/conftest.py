"""One worker for the web tests: HTTP ingestion with an API key and a small body limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ops import running_worker
from tests.support.worker import WorkerProcess

API_KEY = "test-key-7f3a9c"
MAX_BODY = 4096


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
    ) as started:
        yield started
