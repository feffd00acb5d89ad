"""Rows: valid messages only, deduplicated, sorted by ts, round trip through Parquet."""

from __future__ import annotations

import io
import json
import random

import botocore.exceptions
import pyarrow.parquet as pq

from streamapp.archive.compaction import (
    Row,
    TopicState,
    decoder_for,
    is_closed,
    parquet_bytes,
    rows_to_table,
    table_to_rows,
)
from streamapp.archive.records import ArchivedRecord, parse_hour_label
from streamapp.archive.store import backoff_delay, is_transient
from streamapp.contracts.codec import Invalid
from streamapp.settings import Settings


def row(offset: int, ts_ms: float, partition: int = 0, signals: dict | None = None) -> Row:
    return Row("A1", ts_ms, None, "telemetry", partition, offset, 1, signals or {"s2": 1.0})


def test_rows_are_deduplicated_and_sorted_by_ts() -> None:
    rows = [row(3, 300), row(1, 100), row(2, 200), row(1, 100), row(1, 50, partition=1)]
    table = rows_to_table(rows)
    assert table.num_rows == 4
    assert table.column("offset").to_pylist() == [1, 1, 2, 3]
    assert table.column("partition").to_pylist() == [1, 0, 0, 0]


def test_parquet_round_trip_keeps_rows_and_clashing_signal_names() -> None:
    rows = [row(1, 100, signals={"s2": 1.5, "offset": 7.0}), row(2, 200, signals={"s3": 2.5})]
    table = pq.read_table(io.BytesIO(parquet_bytes(rows_to_table(rows))))
    assert "signal_offset" in table.column_names
    back = table_to_rows(table)
    assert [(r.offset, r.signals) for r in back] == [
        (1, {"s2": 1.5, "offset": 7.0}),
        (2, {"s3": 2.5}),
    ]
    assert rows_to_table(back + rows).equals(rows_to_table(rows))


def test_the_shared_validator_decides_what_becomes_a_row() -> None:
    decode, _ = decoder_for("telemetry", Settings())
    good = {"asset_id": "A1", "ts": "2026-11-21T05:00:00Z", "signals": {"s2": 1}}
    assert not isinstance(
        decode(ArchivedRecord("telemetry", 0, 0, 0, b"A1", json.dumps(good).encode())), Invalid
    )
    assert isinstance(decode(ArchivedRecord("telemetry", 0, 1, 0, b"A1", b"\xff")), Invalid)


def test_battery_records_become_rows_of_their_vin_deduplicated_by_record() -> None:
    """A weekly health record: numbers, text and the flattened end of life as columns;
    its re-emission at a later offset is the same row; the text survives a round trip."""
    settings = Settings()
    decode, identity = decoder_for(settings.topic_battery_health, settings)
    week = {
        "vin": "5YJ3E1EA000000001", "week": "2026-01-05", "soh": 97.5, "soh_raw": None,
        "sessions": 3, "nominal_source": "table",
        "end_of_life": {"threshold": 80, "date": "2031-05-04", "date_lower": None},
    }  # fmt: skip
    value = json.dumps(week).encode()
    rows = [
        decode(ArchivedRecord(settings.topic_battery_health, 2, offset, 0, b"V", value))
        for offset in (7, 9)
    ]
    assert all(isinstance(r, Row) for r in rows)
    first = rows[0]
    assert isinstance(first, Row)
    assert (first.asset_id, first.ts_ms) == ("5YJ3E1EA000000001", 1_767_571_200_000.0)
    assert first.signals == {"soh": 97.5, "sessions": 3.0, "end_of_life_threshold": 80.0}
    assert first.text == {"week": "2026-01-05", "nominal_source": "table",
                          "end_of_life_date": "2031-05-04"}  # fmt: skip
    table = pq.read_table(io.BytesIO(parquet_bytes(rows_to_table(rows, identity))))  # type: ignore[arg-type]
    assert table.num_rows == 1
    assert [(r.signals, r.text) for r in table_to_rows(table)] == [(first.signals, first.text)]
    bad = ArchivedRecord(settings.topic_charge_sessions, 0, 1, 0, b"V", b'{"vin": 1}')
    assert isinstance(decoder_for(settings.topic_charge_sessions, settings)[0](bad), Invalid)


def test_an_hour_closes_after_its_end_plus_grace() -> None:
    hour = parse_hour_label("2026-11-21T05")
    end = hour + 3_600_000
    assert not is_closed(hour, end + 299_999, 300)
    assert is_closed(hour, end + 300_000, 300)


def test_state_tracks_pending_hours_per_object() -> None:
    state = TopicState({"a": {"hours": [1, 2], "done": [1]}, "b": {"hours": [], "done": []}})
    assert state.pending_hours() == {2}
    assert not state.fully_compacted("a") and state.fully_compacted("b")
    assert TopicState.loads(state.dumps()) == state


def test_transient_errors_are_retried_and_permanent_ones_are_not() -> None:
    def client_error(status: int, code: str) -> botocore.exceptions.ClientError:
        response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return botocore.exceptions.ClientError(response, "PutObject")

    assert is_transient(client_error(503, "SlowDown"))
    assert is_transient(client_error(500, "InternalError"))
    assert is_transient(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(client_error(403, "AccessDenied"))
    assert not is_transient(client_error(404, "NoSuchBucket"))


def test_backoff_grows_exponentially_with_full_jitter_under_a_cap() -> None:
    rng = random.Random(1)
    delays = [[backoff_delay(a, 0.1, 5.0, rng) for _ in range(200)] for a in range(8)]
    assert all(0 <= d <= min(5.0, 0.1 * 2**a) for a, ds in enumerate(delays) for d in ds)
    assert max(delays[7]) > 2.5 > max(delays[1])
