"""POST /api/v1/telemetry on a running worker: 202, 400, 401, 413, records on `telemetry`."""

from __future__ import annotations

import json

import pytest

from tests.support.ops import counter_total, post, read_topic, scrape
from tests.web.conftest import API_KEY, MAX_BODY

pytestmark = pytest.mark.integration


def record(asset_id: str, cycle: int) -> dict:
    return {
        "asset_id": asset_id,
        "ts": f"2026-11-22T06:00:{cycle:02d}.000Z",
        "signals": {"s2": 642.1 + cycle, "s3": 1589.7},
        "cycle": cycle,
    }


def send(worker, payload: bytes, key: str | None = API_KEY) -> tuple[int, dict]:
    headers = {} if key is None else {"X-Api-Key": key}
    return post(worker.base_url + "/api/v1/telemetry", payload, headers)


def test_accepted_records_reach_the_telemetry_topic_keyed_by_asset(web_worker) -> None:
    worker, env = web_worker
    batch = [record("HTTP-A", 1), record("HTTP-B", 2), record("HTTP-A", 3)]
    status, body = send(worker, json.dumps(batch).encode())
    assert (status, body["accepted"]) == (202, 3)
    status, body = send(worker, json.dumps(record("HTTP-C", 4)).encode())
    assert (status, body["accepted"]) == (202, 1)

    on_topic = [r for r in read_topic(env, env["TOPIC_TELEMETRY"]) if r.key.startswith(b"HTTP-")]
    got = sorted((r.key.decode(), json.loads(r.value)["cycle"]) for r in on_topic)
    assert got == [("HTTP-A", 1), ("HTTP-A", 3), ("HTTP-B", 2), ("HTTP-C", 4)]
    value = json.loads(next(r.value for r in on_topic if r.key == b"HTTP-B"))
    assert value["asset_id"] == "HTTP-B"
    assert value["signals"] == {"s2": 644.1, "s3": 1589.7}
    assert value["ts"] == "2026-11-22T06:00:02.000Z"


def test_a_batch_with_invalid_records_is_refused_whole_with_reasons(web_worker) -> None:
    worker, env = web_worker
    batch = [
        record("BAD-OK", 1),
        {"asset_id": "", "ts": 1, "signals": {"a": 1}},
        {"asset_id": "BAD-X", "ts": "yesterday", "signals": {"a": 1}},
    ]
    status, body = send(worker, json.dumps(batch).encode())
    assert (status, body["error"]) == (400, "invalid_records")
    assert body["received"] == 3 and body["invalid"] == 2
    assert [error["index"] for error in body["errors"]] == [1, 2]
    assert "asset_id" in body["errors"][0]["reason"]
    assert "ts" in body["errors"][1]["reason"]

    for payload in (b"{not json", b"[]", b'"just a string"', b"\xff\xfe"):
        status, body = send(worker, payload)
        assert status == 400, payload
        assert body["error"] in ("invalid_request", "invalid_records") and body["detail"]

    keys = {r.key for r in read_topic(env, env["TOPIC_TELEMETRY"])}
    assert b"BAD-OK" not in keys


def test_missing_or_wrong_api_key_is_401_and_the_key_is_never_logged(web_worker) -> None:
    worker, env = web_worker
    before = counter_total(scrape(worker), "streamapp_http_ingest_requests", status="401")
    payload = json.dumps(record("AUTH-1", 1)).encode()
    assert send(worker, payload, key=None)[0] == 401
    wrong = "wrong-key-" + "z" * 20
    assert send(worker, payload, key=wrong)[0] == 401
    assert send(worker, payload, key=API_KEY[:-1])[0] == 401
    after = counter_total(scrape(worker), "streamapp_http_ingest_requests", status="401")
    assert after - before == 3

    log = worker.log_path.read_text(errors="replace")
    assert "status=401" in log
    assert wrong not in log and API_KEY not in log
    keys = {r.key for r in read_topic(env, env["TOPIC_TELEMETRY"])}
    assert b"AUTH-1" not in keys


def test_bodies_over_the_limit_are_413(web_worker) -> None:
    worker, _ = web_worker
    big = [record(f"BIG-{i:04d}", i % 60) for i in range(MAX_BODY // 40)]
    payload = json.dumps(big).encode()
    assert len(payload) > MAX_BODY
    status, body = send(worker, payload)
    assert (status, body["error"]) == (413, "payload_too_large")
    assert str(MAX_BODY) in body["detail"]
    assert "status=413" in worker.log_path.read_text(errors="replace")
