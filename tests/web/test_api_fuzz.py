"""Property-based fuzzing of the live HTTP API from its OpenAPI document (schemathesis).

Every operation of streamapp/web/openapi.json gets generated requests: the document's
examples, boundary values ("coverage") and random ones, valid and invalid, sent to a
real worker on the embedded broker and moto S3. Each answer must be a status the
document lists, with the headers and body it describes, never a 5xx, within the
timeout; invalid input must be refused; a 2xx from a keyed endpoint must become a 401
without the key or with a wrong one (schemathesis sends both). Then the keyed
endpoints get generated valid requests without a key and with a wrong one: all 401.
Afterwards the worker is still the same ready process and its streams still flow.
Counts, statuses and the run time go to test-artifacts/api-fuzz.json and the terminal.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from streamapp.archive.verify import verify
from streamapp.rul.training.artifacts import load_active
from tests.support.ops import (
    counter_total,
    post,
    produce_json,
    read_topic,
    scrape,
    settings_of,
    wait_for,
)
from tests.web.conftest import API_KEY

pytestmark = pytest.mark.integration

OPENAPI = Path(__file__).resolve().parents[2] / "streamapp" / "web" / "openapi.json"
DOCUMENT = json.loads(OPENAPI.read_text())
KEYED = sorted(
    operation["operationId"]
    for methods in DOCUMENT["paths"].values()
    for operation in methods.values()
    if operation.get("security")
)
WRONG_KEY = "not-the-key-" + "x" * 12
EXAMPLES = 300  # per operation and phase; Hypothesis stops sooner on small schemas
EXAMPLES_WITHOUT_KEY = 30
TIMEOUT_S = 20.0  # a request that hangs fails the test
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    unsupported_method,
]

# No schemathesis.toml is read: everything the run does is set here. Invalid input must
# get one of the refusals the document lists (413 included: a too-long array can also
# be a too-large body).
REFUSALS = ["400", "401", "404", "405", "409", "413", "429"]
SCHEMA = schemathesis.openapi.from_path(
    OPENAPI,
    config=schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
    ),
)
VALID_ONLY = schemathesis.openapi.from_path(
    OPENAPI, config=schemathesis.Config.from_dict({"generation": {"mode": "positive"}})
).include(operation_id=KEYED)


class Run:
    """What the fuzzing sent and got, per operation, for the report."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.started: float | None = None
        self.finished = 0.0

    def record(self, label: str, status: int) -> None:
        now = time.monotonic()
        self.started = self.started or now
        self.finished = now
        self.cases[label] += 1
        self.statuses[label][status] += 1

    def report(self) -> dict[str, Any]:
        operations = sum(len(methods) for methods in DOCUMENT["paths"].values())
        covered = sorted({label.split(" [")[0] for label in self.cases})
        return {
            "generated_cases": sum(self.cases.values()),
            "operations_in_document": operations,
            "operations_covered": len(covered),
            "run_time_s": round(self.finished - (self.started or self.finished), 1),
            "examples_per_operation": EXAMPLES,
            "cases": dict(sorted(self.cases.items())),
            "statuses": {
                label: dict(sorted(s.items())) for label, s in sorted(self.statuses.items())
            },
        }

    def summary(self) -> str:
        report = self.report()
        return (
            f"api fuzzing: {report['generated_cases']} generated cases, "
            f"{report['operations_covered']}/{report['operations_in_document']} operations, "
            f"{report['run_time_s']} s (test-artifacts/api-fuzz.json)"
        )


RUN = Run()  # tests/web/conftest.py prints its summary at the end of the session


@pytest.fixture(scope="module", autouse=True)
def fuzz_report(artifacts_dir: Path) -> Iterator[None]:
    yield
    if RUN.cases:
        (artifacts_dir / "api-fuzz.json").write_text(json.dumps(RUN.report(), indent=2) + "\n")


@pytest.fixture(scope="module")
def fuzzed(api_worker) -> tuple[Any, dict[str, str], float]:
    """The worker before the first case: itself, its env and its rebalances so far."""
    worker, env = api_worker
    return worker, env, counter_total(scrape(worker), "streamapp_faust_rebalances")


@SCHEMA.parametrize()
@FUZZ
def test_every_operation_answers_generated_input_as_documented(case, fuzzed) -> None:
    worker, _, _ = fuzzed
    response = case.call_and_validate(
        base_url=worker.base_url, headers={"X-Api-Key": API_KEY}, checks=CHECKS, timeout=TIMEOUT_S
    )
    RUN.record(case.operation.label, response.status_code)


@VALID_ONLY.parametrize()
@settings(FUZZ, max_examples=EXAMPLES_WITHOUT_KEY)
def test_keyed_operations_refuse_a_missing_or_wrong_key(case, fuzzed) -> None:
    worker, _, _ = fuzzed
    for headers, kind in (({}, "no key"), ({"X-Api-Key": WRONG_KEY}, "wrong key")):
        response = case.call(base_url=worker.base_url, headers=headers, timeout=TIMEOUT_S)
        case.validate_response(
            response,
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        )
        RUN.record(f"{case.operation.label} [{kind}]", response.status_code)
        assert response.status_code == 401, (kind, response.status_code, response.text[:300])
        assert response.json()["error"] == "unauthorized"


def test_after_the_fuzzing_the_worker_is_ready_and_its_streams_flow(fuzzed) -> None:
    """Same process, ready all along (no rebalance since the first case), nothing answered
    5xx, and records still go through: everything the fuzzing and this test sent to
    `telemetry` reaches the S3 archive, and a features record becomes a prediction."""
    worker, env, rebalances = fuzzed
    stack = settings_of(env)
    assert worker.alive()
    assert json.loads(worker.get("/health/ready")[1])["status"] == "ready"
    assert counter_total(scrape(worker), "streamapp_faust_rebalances") == rebalances
    answered = scrape(worker)["streamapp_http_responses"].samples
    server_errors = [
        sample.labels
        for sample in answered
        if sample.labels["status"].startswith("5")
        and sample.value > 0
        # the readiness 503s are the documented answers while the worker started
        and sample.labels["route"] != "/health/ready"
    ]
    assert answered and not server_errors
    assert "event=http_unhandled_error" not in worker.log_path.read_text(errors="replace")

    asset = f"FLOW-{uuid.uuid4().hex[:8]}"
    batch = [
        {"asset_id": asset, "ts": 1_800_000_000_000 + i, "signals": {"s2": 1.0}} for i in range(5)
    ]
    status, body = post(
        worker.base_url + "/api/v1/telemetry", json.dumps(batch).encode(), {"X-Api-Key": API_KEY}
    )
    assert (status, body.get("accepted")) == (202, 5), body

    def archived() -> dict[str, Any] | None:
        report = asyncio.run(verify(stack, stack.topic_telemetry))
        return report if report["missing"]["temp"]["count"] == 0 else None

    report = wait_for(archived, 90, "every telemetry message in the S3 archive", every=2.0)
    assert report["kafka_messages"] >= 5

    names = load_active(Path(env["MODELS_DIR"]) / "turbofan").feature_names
    produce_json(
        env,
        stack.topic_features,
        [
            {
                "asset_id": asset,
                "timestamp": "2026-11-22T06:00:00Z",
                "features": dict.fromkeys(names, 1.0),
            }
        ],
    )

    def predicted() -> bool:
        records = read_topic(env, stack.topic_predictions, idle_timeout=1.0)
        return any(json.loads(record.value)["asset_id"] == asset for record in records)

    wait_for(predicted, 60, "a prediction of the new asset", every=2.0)
