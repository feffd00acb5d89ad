"""Temp line encoding is lossless; keys are deterministic and parse back."""

from __future__ import annotations

import json

from faust.types import TP, Message
from hypothesis import given
from hypothesis import strategies as st

from streamapp.archive.records import (
    ArchivedRecord,
    compressed_key,
    decode_line,
    decode_object,
    encode_line,
    encode_message,
    encode_object,
    hour_label,
    hour_start_ms,
    parse_hour_label,
    parse_temp_key,
    temp_key,
)

records = st.builds(
    ArchivedRecord,
    topic=st.sampled_from(["telemetry", "tesla_V"]),
    partition=st.integers(0, 1000),
    offset=st.integers(0, 2**62),
    timestamp_ms=st.integers(0, 2**45),
    key=st.none() | st.binary(max_size=64),
    value=st.none() | st.binary(max_size=512) | st.text(max_size=200).map(str.encode),
    headers=st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=20)), max_size=3).map(
        tuple
    ),
)


@given(records)
def test_any_bytes_survive_a_temp_line(record: ArchivedRecord) -> None:
    line = encode_line(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line) == record


@given(records)
def test_a_temp_line_is_the_compact_json_of_its_fields_in_order(record: ArchivedRecord) -> None:
    """Lines are formatted by hand for speed; they stay what `json.dumps` would write."""
    line = encode_line(record)
    fields = json.loads(line)
    assert list(fields) == [
        "topic",
        "partition",
        "offset",
        "timestamp",
        "key",
        "key_encoding",
        "value",
        "value_encoding",
        "headers",
    ]
    assert line == json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@given(records)
def test_a_faust_message_encodes_as_its_record(record: ArchivedRecord) -> None:
    message = Message(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms / 1000,
        0,
        list(record.headers) or None,
        record.key,
        record.value,
        None,
        tp=TP(record.topic, record.partition),
    )
    assert encode_message(message) == encode_line(record)


def test_text_values_stay_readable_and_binary_becomes_base64() -> None:
    text = encode_line(ArchivedRecord("telemetry", 0, 1, 2, b"A1", b'{"a":1}'))
    binary = encode_line(ArchivedRecord("tesla_V", 0, 1, 2, b"VIN", b"\xff\x00\x10"))
    assert b'"value":"{\\"a\\":1}","value_encoding":"utf8"' in text
    assert b'"value_encoding":"base64"' in binary


def test_objects_are_byte_identical_on_replay() -> None:
    lines = [encode_line(ArchivedRecord("telemetry", 3, i, i, b"k", b"v")) for i in range(5)]
    assert encode_object(lines) == encode_object(lines)
    assert [r.offset for r in decode_object(encode_object(lines))] == list(range(5))


def test_temp_keys_are_zero_padded_and_parse_back() -> None:
    key = temp_key("archive", "tesla_V", 7, 12, 345)
    assert key == (
        "archive/temp/tesla_V/partition=7/00000000000000000012-00000000000000000345.jsonl.gz"
    )
    parsed = parse_temp_key("archive", key)
    assert parsed is not None
    assert (parsed.topic, parsed.partition, parsed.first_offset, parsed.count) == (
        "tesla_V",
        7,
        12,
        334,
    )
    assert parse_temp_key("archive", "archive/temp/t/partition=x/1-2.jsonl.gz") is None
    assert parse_temp_key("other", key) is None


def test_compressed_keys_are_hive_style_and_escape_asset_ids() -> None:
    hour = parse_hour_label("2026-11-22T06")
    assert hour_label(hour_start_ms(hour + 3_599_999)) == "2026-11-22T06"
    assert compressed_key("archive", "telemetry", hour, "A/B=1") == (
        "archive/compressed/telemetry/date=2026-11-22/hour=06/asset_id=A%2FB%3D1.parquet"
    )
