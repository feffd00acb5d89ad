"""The shared codec: compact JSON bytes (pure, no broker)."""

from __future__ import annotations

import tracemalloc

import orjson

from streamapp.contracts.codec import encode_json


def test_encoded_json_holds_only_its_own_bytes() -> None:
    """Workers keep thousands of encoded records alive: each must cost about its size."""
    record = {"asset_id": "ENGINE-0001", "features": {f"s{i}_mean": i / 7 for i in range(200)}}
    tracemalloc.start()
    try:
        kept = [encode_json(record) for _ in range(200)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert orjson.loads(kept[0]) == record
    assert held / len(kept) < 1.2 * len(kept[0]) + 200
