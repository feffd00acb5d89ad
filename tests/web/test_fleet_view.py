"""FleetView: the in-process store behind the fleet page (pure logic, no broker)."""

from __future__ import annotations

from streamapp.web.fleet import FleetView, decode_prediction
from tests.support.ops import prediction


def test_assets_are_ranked_by_their_latest_prediction_not_their_last_arrival() -> None:
    fleet = FleetView()
    fleet.record_prediction(prediction("A", 50.0, "2026-01-01T00:00:02Z"))
    fleet.record_prediction(prediction("A", 90.0, "2026-01-01T00:00:01Z"))  # late arrival
    fleet.record_prediction(prediction("B", 70.0, "2026-01-01T00:00:01Z"))
    snapshot = fleet.snapshot(threshold=60.0)
    assert [(a["asset_id"], a["rul"]) for a in snapshot["assets"]] == [("A", 50.0), ("B", 70.0)]
    assert [p["rul"] for p in snapshot["assets"][0]["history"]] == [90.0, 50.0]
    assert snapshot["under_threshold"] == 1 and snapshot["asset_count"] == 2


def test_duplicates_are_ignored_and_malformed_records_counted() -> None:
    fleet = FleetView()
    record = prediction("A", 50.0, "2026-01-01T00:00:00Z")
    assert fleet.record_prediction(record) is True
    assert fleet.record_prediction(dict(record)) is False
    assert fleet.record_prediction({**record, "model_version": "v2"}) is True
    for bad in (
        {"asset_id": "A"},
        {**record, "rul_prediction": "x"},
        {**record, "timestamp": 1.5e99},
        {**record, "asset_id": ""},
        {**record, "rul_prediction": float("nan")},
    ):
        assert fleet.record_prediction(bad) is False
    assert fleet.predictions_seen == 2 and fleet.rejected == 5
    assert decode_prediction(b"[1]") is None and decode_prediction(b"{") is None


def test_history_and_asset_count_are_bounded() -> None:
    fleet = FleetView(history_points=3, max_assets=2)
    for second in range(10):
        fleet.record_prediction(prediction("A", 100.0 - second, f"2026-01-01T00:00:{second:02d}Z"))
    assert fleet.record_prediction(prediction("A", 1.0, "2026-01-01T00:00:00Z")) is False
    fleet.record_prediction(prediction("B", 5.0, "2026-01-01T00:00:00Z"))
    fleet.record_prediction(prediction("C", 6.0, "2026-01-01T00:00:00Z"))
    snapshot = fleet.snapshot()
    assert [a["asset_id"] for a in snapshot["assets"]] == ["B", "C"]  # A least recently updated
    fleet.record_prediction(prediction("B", 4.0, "2026-01-01T00:00:01Z"))
    assert len(fleet.snapshot()["assets"][0]["history"]) == 2


def test_predictions_per_minute_forgets_old_arrivals() -> None:
    fleet = FleetView()
    fleet.record_prediction(prediction("A", 1.0, "2026-01-01T00:00:00Z"), now=100.0)
    fleet.record_prediction(prediction("A", 1.0, "2026-01-01T00:00:01Z"), now=150.0)
    assert fleet.predictions_per_minute(now=155.0) == 2
    assert fleet.predictions_per_minute(now=170.0) == 1


def test_the_snapshot_types_every_field_whatever_a_producer_wrote() -> None:
    """The predictions topic is open to any producer; the API answers what it documents."""
    fleet = FleetView()
    odd = {
        **prediction("ODD", 10.0, "2026-01-01T00:00:00Z"),
        "confidence_interval_lower": "low",
        "confidence_interval_upper": None,
        "confidence_level": [0.9],
        "model_version": 3,
        "model_scores": {"lstm": 1.0, "gru": "x", "tcn": True},
    }
    assert fleet.record_prediction(odd)
    (asset,) = fleet.snapshot()["assets"]
    assert (asset["lower"], asset["upper"], asset["confidence_level"]) == (None, None, None)
    assert asset["model_version"] is None and asset["model_scores"] == {"lstm": 1.0}
    assert asset["timestamp"] == "2026-01-01T00:00:00Z"


def test_each_asset_shows_its_class_and_the_fleet_counts_them() -> None:
    fleet = FleetView()
    fleet.record_prediction(
        {**prediction("E1", 50.0, "2026-01-01T00:00:01Z"), "asset_class": "turbofan"}
    )
    fleet.record_prediction(
        {**prediction("P1", 20.0, "2026-01-01T00:00:01Z"), "asset_class": "rotating"}
    )
    fleet.record_prediction(
        {**prediction("P2", 30.0, "2026-01-01T00:00:01Z"), "asset_class": "rotating"}
    )
    fleet.record_prediction(prediction("X1", 40.0, "2026-01-01T00:00:01Z"))  # an older producer
    snapshot = fleet.snapshot()
    assert [(a["asset_id"], a["asset_class"]) for a in snapshot["assets"]] == [
        ("P1", "rotating"),
        ("P2", "rotating"),
        ("X1", None),
        ("E1", "turbofan"),
    ]
    assert snapshot["classes"] == {"rotating": 2, "turbofan": 1, "unclassified": 1}
