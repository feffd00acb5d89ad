"""Errors a client can provoke get a 4xx with the reason, never a 500: a version name of
5,000 characters, path traversal, a read-only models folder (a real read-only bind mount,
in a mount namespace of the worker's own), a worker without an active model."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import schemathesis
from jsonschema import Draft202012Validator
from schemathesis.checks import response_schema_conformance, status_code_conformance

from tests.conftest import ROOT
from tests.support.ops import post
from tests.web.conftest import API_KEY

pytestmark = pytest.mark.integration

OPENAPI = Path(__file__).resolve().parents[2] / "streamapp" / "web" / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(OPENAPI, config=schemathesis.Config.from_dict({}))
KEY = {"X-Api-Key": API_KEY}


def activate(worker, version: str, key: str | None = API_KEY) -> tuple[int, dict]:
    headers = {"X-Api-Key": key} if key else {}
    return post(f"{worker.base_url}/api/v1/rul/models/{version}/activate", b"", headers)


def test_a_5000_character_version_is_a_400_with_the_reason(api_worker) -> None:
    worker, _ = api_worker
    status, body = activate(worker, "v" * 5000)
    assert (status, body["error"]) == (400, "invalid_version")
    assert "longer than 128 characters" in body["detail"]
    assert activate(worker, "v" * 5000, key=None)[0] == 401  # the key is checked first
    for name in ("..", "%2E%2E", "..%2F..%2Fetc", "a%00b", "a%0A", ".hidden", "v1%2F..%2Fx"):
        status, body = activate(worker, name)
        assert status in (400, 404), (name, status, body)
        assert body["error"] in ("invalid_version", "not_found"), (name, body)
    log = worker.log_path.read_text(errors="replace")
    assert "File name too long" not in log and "event=http_unhandled_error" not in log


def unshare_works() -> bool:
    probe = ["unshare", "--mount", "--propagation", "private", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def read_only_mount(folder: Path) -> tuple[str, ...]:
    """A command prefix: its own mount namespace where `folder` is mounted read-only."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(folder))


@pytest.mark.skipif(not unshare_works(), reason="needs mount namespaces (root, unshare)")
def test_a_read_only_models_folder_gets_409_with_the_reason(
    isolated_env: dict[str, str], start_worker, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    version = (models / "turbofan" / "ACTIVE").read_text().strip()
    (models / "turbofan" / "ACTIVE").unlink()  # no active model: predictions are refused
    env = {**isolated_env, "API_KEY": API_KEY, "MODELS_DIR": str(models), "TORCH_THREADS": "1"}
    worker = start_worker(env, "read-only", wrapper=read_only_mount(models))

    starting = None  # a /health/ready answer before the group has assigned partitions
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert worker.alive(), worker.log_tail()
        try:
            status, body = worker.get("/health/ready")
        except OSError:
            time.sleep(0.2)
            continue
        if status == 503 and starting is None:
            starting = body
        if status == 200:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"worker not ready; log:\n{worker.log_tail()}")
    assert starting is not None and json.loads(starting)["status"] == "starting"

    status, body = activate(worker, version)
    assert (status, body["error"]) == (409, "not_writable"), body
    assert "Read-only file system" in body["detail"] and "ACTIVE" in body["detail"]
    status, body = post(
        f"{worker.base_url}/api/v1/rul/train", json.dumps({"data": str(tmp_path)}).encode(), KEY
    )
    assert (status, body["error"]) == (409, "not_writable"), body
    assert str(models) in body["detail"]
    assert not (models / "turbofan" / "ACTIVE").exists()

    checked = [
        ("/health/ready", "GET", {}, 200),
        ("/api/v1/rul/models", "GET", {}, 200),
        ("/api/v1/rul/predict", "POST", {"body": {"sequence": [{"a": 1.0}]}}, 503),
        ("/api/v1/rul/models/{version}/activate", "POST",
         {"path_parameters": {"version": version}, "headers": KEY}, 409),
    ]  # fmt: skip
    for path, method, arguments, expected in checked:
        case = SCHEMA[path][method].Case(**arguments)
        response = case.call(base_url=worker.base_url, timeout=30)
        case.validate_response(
            response, checks=[status_code_conformance, response_schema_conformance]
        )
        assert response.status_code == expected, (path, response.text)
    classes = json.loads(worker.get("/api/v1/rul/models")[1])["classes"]
    turbofan = next(entry for entry in classes if entry["asset_class"] == "turbofan")
    assert turbofan["versions"][0]["version"] == version
    readiness = json.loads(OPENAPI.read_text())["components"]["schemas"]["Readiness"]
    Draft202012Validator(readiness).validate(json.loads(starting))  # the documented 503 body

    log = worker.log_path.read_text(errors="replace")
    assert "event=http_storage_error" in log and "errno=EROFS" in log
    assert "Traceback" not in log and API_KEY not in log
