"""The OpenAPI document is the contract of the worker's web server.

It validates as OpenAPI 3; its operations are exactly the server's routes; its error
codes, limits and patterns are the code's; the worker serves it byte for byte; and real
requests provoke every answer it documents with the body it describes (the answers
that need another worker state are provoked by the tests named in ELSEWHERE).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from streamapp.app import create_app
from streamapp.contracts.codec import MAX_ASSET_ID_CHARS
from streamapp.rul.training.artifacts import MAX_VERSION_CHARS, VERSION_RE, active_version
from streamapp.rul.training.jobs import FORMATS, MODELS_TEXT_RE, SUBSET_RE, TrainRequest
from streamapp.rul.training.networks import MODEL_KINDS
from streamapp.rul.training.train import TrainConfig
from streamapp.settings import Settings
from streamapp.web.errors import ERRORS
from streamapp.web.fleet import FleetView
from streamapp.web.rul_api import MAX_STEPS
from streamapp.web.views import FLEET_LIMITS, openapi_document
from tests.support.ops import post, prediction, wait_for
from tests.web.conftest import API_KEY, API_MAX_BODY
from tests.web.test_fleet_view import health

OPENAPI = Path(__file__).resolve().parents[2] / "streamapp" / "web" / "openapi.json"
DOCUMENT = json.loads(OPENAPI.read_text())
SCHEMAS = DOCUMENT["components"]["schemas"]
KEY = {"X-Api-Key": API_KEY}

# Documented answers the requests below cannot provoke on a healthy worker, and where
# they are provoked instead.
ELSEWHERE = {
    ("getReady", 503): "tests/web/test_api_errors.py: a starting worker",
    ("predict", 503): "tests/web/test_api_errors.py: a worker without an active model",
    ("postTelemetry", 429): "tests/web/test_rate_limits.py",
    ("predict", 429): "tests/web/test_rate_limits.py",
    ("startTraining", 429): "tests/web/test_rate_limits.py",
    ("activateModel", 503): "tests/web/test_errors.py: filesystem errors besides read-only",
    ("getModels", 503): "tests/web/test_errors.py: filesystem errors besides read-only",
    ("startTraining", 503): "tests/rul/test_jobs.py: S3 unreachable",
    ("postTelemetry", 503): "not provoked: the broker would have to fail for 30 s",
}


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, operation)."""
    return {
        operation["operationId"]: (method, path, operation)
        for path, methods in DOCUMENT["paths"].items()
        for method, operation in methods.items()
    }


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def error_codes(schema: dict[str, Any]) -> set[str]:
    """The `error` codes an error response schema allows (its allOf parts' enums)."""
    schema = resolve(schema)
    codes = set(schema.get("properties", {}).get("error", {}).get("enum", []))
    for part in schema.get("allOf", []):
        codes |= error_codes(part)
    return codes


def test_the_document_validates_as_openapi_3() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.")
    assert openapi_document() == OPENAPI.read_bytes()  # what the worker serves (package data)


def test_the_server_routes_are_the_documented_operations(tmp_path: Path) -> None:
    """HEAD is left out: Faust answers it on every route, with the GET's headers."""

    async def routes() -> set[tuple[str, str]]:
        app = create_app(Settings(data_dir=tmp_path))
        app.web.init_server()
        return {
            (route.method, route.resource.canonical)
            for route in app.web.web_app.router.routes()
            if route.method != "HEAD"
        }

    documented = {(method.upper(), path) for method, path, _ in operations().values()}
    assert asyncio.run(routes()) == documented


def test_every_error_code_is_documented_with_its_one_status() -> None:
    assert SCHEMAS["ErrorCode"]["enum"] == list(ERRORS)
    used: set[str] = set()
    for name, (_, _, operation) in operations().items():
        for status, response in operation["responses"].items():
            if int(status) < 400 or name == "getReady":  # its 503 is the readiness body
                continue
            schema = resolve(response)["content"]["application/json"]["schema"]
            codes = error_codes(schema)
            assert codes, f"{name} {status}: no error codes"
            assert {ERRORS[code] for code in codes} == {int(status)}, (name, status, codes)
            used |= codes
    # the router's 405 and the last-resort 500 are on no operation
    assert used == set(ERRORS) - {"method_not_allowed", "internal_error"}


def test_the_document_s_limits_and_patterns_are_the_code_s() -> None:
    ops = operations()
    version, asset_class = ops["activateModel"][2]["parameters"]
    for parameter in (version, asset_class):
        assert parameter["schema"]["maxLength"] == MAX_VERSION_CHARS
        assert parameter["schema"]["pattern"] == f"^{VERSION_RE.pattern}$"
    (limit,) = ops["getFleet"][2]["parameters"]
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == FLEET_LIMITS
    assert SCHEMAS["PredictRequest"]["properties"]["sequence"]["maxItems"] == MAX_STEPS
    record = SCHEMAS["TelemetryRecord"]["properties"]
    assert record["asset_id"]["maxLength"] == MAX_ASSET_ID_CHARS
    train = SCHEMAS["TrainRequest"]["properties"]
    assert set(train) == set(TrainRequest.__slots__)
    assert train["format"]["enum"] == list(FORMATS)
    assert train["subset"]["pattern"] == f"^{SUBSET_RE.pattern}$"
    as_list, as_text = train["models"]["anyOf"]
    assert as_list["items"]["enum"] == list(MODEL_KINDS)
    assert as_text["pattern"] == f"^{MODELS_TEXT_RE.pattern}$"
    assert train["models"]["default"] == list(TrainConfig.models)


def test_a_fleet_answer_with_assets_and_evs_is_as_documented() -> None:
    """The live requests below may find no EV (nothing writes battery health there)."""
    fleet = FleetView()
    fleet.record_prediction(prediction("E1", 50.0, "2026-01-01T00:00:01Z"))
    eol = {"threshold": 80.0, "date": "2031-03-03", "date_lower": "2030-06-02"}
    fleet.record_battery_health(health("VIN1", "2026-01-05", 95.0))
    fleet.record_battery_health(health("VIN1", "2026-01-12", 94.0, end_of_life=eol))
    fleet.record_battery_health(health("VIN2", "2026-01-12", None))
    body = {**fleet.snapshot(), "counters": {}, "ready": True}
    assert len(body["evs"]) == 2 and body["evs"][0]["end_of_life"]["date_upper"] is None
    schema = {**DOCUMENT, "$ref": "#/components/schemas/Fleet"}
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)


@pytest.mark.integration
def test_the_worker_serves_the_checked_in_document(api_worker) -> None:
    worker, _ = api_worker
    status, body = worker.get("/api/v1/openapi.json")
    assert status == 200 and body == OPENAPI.read_bytes()


def example(operation_id: str, name: str | None = None) -> Any:
    content = operations()[operation_id][2]["requestBody"]["content"]["application/json"]
    return content["examples"][name]["value"] if name else content["example"]


@pytest.mark.integration
def test_real_requests_get_every_documented_answer_as_documented(
    api_worker, tmp_path: Path
) -> None:
    worker, env = api_worker
    models = Path(env["MODELS_DIR"]) / "turbofan"
    version = active_version(models)
    assert version is not None
    tampered = models / "tampered-v1"
    shutil.copytree(models / version, tampered)
    (tampered / "metrics.json").write_text("{}")
    schema = schemathesis.openapi.from_path(OPENAPI, config=schemathesis.Config.from_dict({}))
    nowhere = json.dumps({"data": str(tmp_path / "nowhere")}).encode()

    def no_job_running() -> bool:  # the fuzzing may have started one (data "/" exists)
        return post(f"{worker.base_url}/api/v1/rul/train", nowhere, KEY)[0] != 409

    wait_for(no_job_running, 120, "no training job running on the worker")
    record = {"asset_id": "OAS-1", "ts": "2026-11-22T06:00:00Z", "signals": {"s2": 1.0}}
    big = b'{"pad": "' + b"x" * API_MAX_BODY + b'"}'
    requests: list[tuple[str, dict[str, Any], int]] = [
        ("getOpenApi", {}, 200),
        ("getMetrics", {}, 200),
        ("getLive", {}, 200),
        ("getReady", {}, 200),
        ("getFleetPage", {}, 200),
        ("getStatic", {"path_parameters": {"name": "fleet.js"}}, 200),
        ("getStatic", {"path_parameters": {"name": "nothing.js"}}, 404),
        ("getFleet", {"query": {"limit": 5}}, 200),
        ("getFleet", {"query": {"limit": 0}}, 400),
        ("postTelemetry", {"body": example("postTelemetry"), "headers": KEY}, 202),
        ("postTelemetry", {"body": [record, {**record, "ts": "soon"}], "headers": KEY}, 400),
        ("postTelemetry", {"body": record}, 401),
        ("postTelemetry", {"body": big, "headers": KEY, "media_type": "application/json"}, 413),
        ("getModels", {}, 200),
        ("activateModel", {"path_parameters": {"version": version}, "headers": KEY}, 200),
        ("activateModel", {"path_parameters": {"version": "v" * 5000}, "headers": KEY}, 400),
        ("activateModel", {"path_parameters": {"version": version}}, 401),
        ("activateModel", {"path_parameters": {"version": "nope-1"}, "headers": KEY}, 404),
        ("activateModel", {"path_parameters": {"version": tampered.name}, "headers": KEY}, 409),
        ("predict", {"body": example("predict", "bare")}, 200),
        ("predict", {"body": example("predict", "records")}, 200),
        ("predict", {"body": example("predict", "out_of_range")}, 400),
        ("predict", {"body": big, "media_type": "application/json"}, 413),
        ("startTraining", {"body": example("startTraining"), "headers": KEY}, 400),
        ("startTraining", {"body": {"data": str(tmp_path / "nowhere")}, "headers": KEY}, 400),
        ("startTraining", {"body": {"data": "x", "epochs": 0}, "headers": KEY}, 400),
        ("startTraining", {"body": {"data": "x"}}, 401),
        ("startTraining", {"body": big, "headers": KEY, "media_type": "application/json"}, 413),
        ("startTraining", {"body": {"data": str(tmp_path)}, "headers": KEY}, 202),
        ("startTraining", {"body": {"data": str(tmp_path)}, "headers": KEY}, 409),
        ("getTrainingJob", {"path_parameters": {"job_id": "nosuchjob"}}, 404),
    ]
    seen: set[tuple[str, int]] = set()
    job_url = None
    for operation_id, arguments, expected in requests:
        method, path, _ = operations()[operation_id]
        case = schema[path][method.upper()].Case(**arguments)
        response = case.call(base_url=worker.base_url, timeout=30)
        case.validate_response(
            response,
            checks=[
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ],
        )
        assert response.status_code == expected, (operation_id, arguments, response.text[:500])
        seen.add((operation_id, expected))
        if operation_id == "startTraining" and expected == 202:
            job_url = response.json()["status_url"]
    assert job_url is not None
    job_id = job_url.rsplit("/", 1)[-1]
    case = schema["/api/v1/rul/train/{job_id}"]["GET"].Case(path_parameters={"job_id": job_id})
    response = case.call(base_url=worker.base_url, timeout=30)
    case.validate_response(response, checks=[status_code_conformance, response_schema_conformance])
    assert response.status_code == 200 and response.json()["job_id"] == job_id
    seen.add(("getTrainingJob", 200))
    documented = {
        (name, int(status))
        for name, (_, _, operation) in operations().items()
        for status in operation["responses"]
    }
    assert documented - seen == set(ELSEWHERE), sorted(documented - seen - set(ELSEWHERE))

    def ended() -> bool:  # on its empty folder; no training process is left behind
        return json.loads(worker.get(job_url)[1])["status"] == "failed"

    wait_for(ended, 120, "the training job to fail")
