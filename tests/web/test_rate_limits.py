"""Rate limits on a running worker: a burst over an endpoint's limit gets 429 with
Retry-After and the JSON error body, counted in the metrics, while the worker keeps
serving the same endpoint to other callers and other endpoints to the same caller."""

from __future__ import annotations

import http.client
import json
import math
import time
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import (
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.ops import counter_total, scrape
from tests.web.conftest import API_KEY, PREDICT_BURST, PREDICT_PER_S, TELEMETRY_BURST

pytestmark = pytest.mark.integration

OPENAPI = Path(__file__).resolve().parents[2] / "streamapp" / "web" / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(OPENAPI, config=schemathesis.Config.from_dict({}))
PREDICT = "/api/v1/rul/predict"
TRAIN = "/api/v1/rul/train"
TELEMETRY = "/api/v1/telemetry"
TRAIN_BURST = 3  # the default


def call(
    worker, path: str, headers: dict[str, str] | None = None, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], dict]:
    """POST `{}` from the address `source` (any of 127/8 reaches the worker on loopback)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", worker.web_port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST", path, b"{}", {"Content-Type": "application/json", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
    finally:
        connection.close()


def documented_429(worker, path: str) -> int:
    """One more request, its 429 checked against the document; returns Retry-After."""
    case = SCHEMA[path]["POST"].Case(body={})
    response = case.call(base_url=worker.base_url, timeout=30)
    case.validate_response(
        response,
        checks=[status_code_conformance, response_headers_conformance, response_schema_conformance],
    )
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"] == "rate_limited" and "retry in" in body["detail"]
    (retry,) = response.headers["retry-after"]
    return int(retry)


def test_a_predict_burst_gets_429_and_the_worker_serves_everyone_else(web_worker) -> None:
    worker, _ = web_worker
    before = counter_total(scrape(worker), "streamapp_http_rate_limited", endpoint="predict")
    answers = [call(worker, PREDICT)[0] for _ in range(PREDICT_BURST + 2)]
    # `{}` has no sequence: answered 400 while tokens last, then refused before reading
    assert answers == [400] * PREDICT_BURST + [429, 429]
    retry = documented_429(worker, PREDICT)
    assert 1 <= retry <= math.ceil(1 / PREDICT_PER_S)

    assert call(worker, PREDICT, source="127.0.0.2")[0] == 400  # another address
    assert call(worker, PREDICT, {"X-Api-Key": API_KEY})[0] == 400  # the key's holder
    assert call(worker, PREDICT, {"X-Api-Key": "made-up"})[0] == 429  # a wrong key is no one
    assert call(worker, TELEMETRY, {"X-Api-Key": API_KEY})[0] == 400  # another endpoint
    assert worker.get("/api/v1/fleet")[0] == 200 and worker.get("/health/ready")[0] == 200
    after = counter_total(scrape(worker), "streamapp_http_rate_limited", endpoint="predict")
    assert after - before == 4

    time.sleep(retry)
    assert call(worker, PREDICT)[0] == 400  # a token is back after Retry-After
    log = worker.log_path.read_text(errors="replace")
    assert f"endpoint={PREDICT} status=429 error=rate_limited" in log


@pytest.mark.parametrize(("path", "burst"), [(TRAIN, TRAIN_BURST), (TELEMETRY, TELEMETRY_BURST)])
def test_train_and_telemetry_bursts_are_limited_before_the_key_is_checked(
    web_worker, path: str, burst: int
) -> None:
    worker, _ = web_worker
    answers = [call(worker, path, source="127.0.0.3")[0] for _ in range(burst + 3)]
    assert answers[:burst] == [401] * burst and 429 in answers[burst:]
    assert call(worker, path, source="127.0.0.4")[0] == 401  # others still get their answer
    endpoint = path.rsplit("/", 1)[-1]
    assert counter_total(scrape(worker), "streamapp_http_rate_limited", endpoint=endpoint) >= 1
