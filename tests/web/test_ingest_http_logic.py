"""HTTP ingestion's pure parts: key comparison and batch parsing (no broker)."""

from __future__ import annotations

import json

from streamapp.contracts.telemetry import Telemetry
from streamapp.web.auth import key_is_valid
from streamapp.web.ingest_http import Refusal, parse_batch


def test_keys_compare_exactly_and_no_configured_key_refuses_everything() -> None:
    assert key_is_valid("s3cret", "s3cret")
    assert not key_is_valid("s3cre", "s3cret")
    assert not key_is_valid("S3CRET", "s3cret")
    assert not key_is_valid(None, "s3cret")
    assert not key_is_valid("", None) and not key_is_valid("anything", None)
    assert key_is_valid("clé-é", "clé-é")


def ok(asset: str) -> dict:
    return {"asset_id": asset, "ts": 1_700_000_000_000, "signals": {"a": 1}}


def test_one_object_or_an_array_is_accepted() -> None:
    one = parse_batch(json.dumps(ok("A")).encode(), 10_000, 1_000)
    many = parse_batch(json.dumps([ok("A"), ok("B")]).encode(), 10_000, 1_000)
    assert isinstance(one, list) and [r.asset_id for r in one] == ["A"]
    assert isinstance(many, list) and all(isinstance(r, Telemetry) for r in many)


def test_refusals_name_every_bad_record() -> None:
    refused = parse_batch(json.dumps([ok("A"), 3, ok("")]).encode(), 10_000, 1_000)
    assert isinstance(refused, Refusal) and refused.status == 400
    assert [e["index"] for e in refused.body["errors"]] == [1, 2]
    big = {**ok("A"), "signals": {f"s{i}": i for i in range(100)}}
    refused = parse_batch(json.dumps(big).encode(), 10_000, 200)
    assert isinstance(refused, Refusal) and "too large" in refused.body["errors"][0]["reason"]
    for body in (b"", b"[]", b"{", b"\xff", b"NaN"):
        refused = parse_batch(body, 10_000, 1_000)
        assert isinstance(refused, Refusal) and refused.status == 400, body
    assert isinstance(parse_batch(b"[" + b" " * 50 + b"]", 10, 1_000), Refusal)
