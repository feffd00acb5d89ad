"""FleetView: the in-process store behind the fleet page (pure logic, no broker)."""

from __future__ import annotations

from typing import Any

from streamapp.web.fleet import FleetView, decode_record
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
    assert decode_record(b"[1]") is None and decode_record(b"{") is None
    assert fleet.record_prediction(decode_record(b"not json")) is False and fleet.rejected == 6


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


def health(vin: str, week: str, soh: float | None, **fields: Any) -> dict[str, Any]:
    """A `battery-health` record as the battery agent writes it (WeekHealth.to_json_dict)."""
    record: dict[str, Any] = {
        "vin": vin,
        "week": week,
        "soh": soh,
        "soh_raw": soh,
        "soh_lower": None if soh is None else soh - 1.5,
        "soh_upper": None if soh is None else soh + 1.5,
        "sessions": 3,
        "capacity_kwh": None if soh is None else 0.75 * soh,
        "nominal_kwh": 75.0,
        "nominal_source": "table",
        "odometer_km": 12000.0,
        "end_of_life": None,
    }
    return {**record, **fields}


def test_each_ev_keeps_its_newest_week_and_its_soh_trend_in_week_order() -> None:
    fleet = FleetView()
    eol = {
        "threshold": 80.0,
        "date": "2031-03-03",
        "date_lower": "2030-06-02",
        "date_upper": None,
        "odometer_km": 190000.0,
    }
    assert fleet.record_battery_health(health("VIN1", "2026-01-12", 97.0, end_of_life=eol))
    assert fleet.record_battery_health(health("VIN1", "2026-01-05", 98.0))  # late arrival
    assert fleet.record_battery_health(health("VIN1", "2026-01-19", None))  # nothing measured
    assert fleet.record_battery_health(health("VIN1", "2026-01-12", 96.5, end_of_life=eol))
    (ev,) = fleet.snapshot()["evs"]
    assert ev["week"] == "2026-01-19" and ev["soh"] is None and ev["end_of_life"] is None
    assert ev["trend"] == [{"week": "2026-01-05", "soh": 98.0}, {"week": "2026-01-12", "soh": 96.5}]
    assert fleet.record_battery_health(health("VIN1", "2026-01-26", 96.0, end_of_life=eol))
    (ev,) = fleet.snapshot()["evs"]
    assert (ev["soh"], ev["soh_lower"], ev["soh_upper"]) == (96.0, 94.5, 97.5)
    assert ev["end_of_life"] == eol and (ev["nominal_kwh"], ev["nominal_source"]) == (75.0, "table")
    assert [point["soh"] for point in ev["trend"]] == [98.0, 96.5, 96.0]
    assert fleet.battery_records_seen == 5 and fleet.battery_rejected == 0


def test_the_soh_trend_and_the_evs_are_bounded() -> None:
    fleet = FleetView(history_points=3, max_assets=2)
    for day in range(5, 29, 7):  # four Mondays of January 2026
        fleet.record_battery_health(health("VIN1", f"2026-01-{day:02d}", 100.0 - day / 7))
    assert fleet.record_battery_health(health("VIN1", "2025-12-29", 100.0))  # older than kept
    (ev,) = fleet.snapshot()["evs"]
    assert [point["week"] for point in ev["trend"]] == ["2026-01-12", "2026-01-19", "2026-01-26"]
    fleet.record_battery_health(health("VIN2", "2026-01-05", 90.0))
    fleet.record_battery_health(health("VIN3", "2026-01-05", 91.0))
    snapshot = fleet.snapshot(limit=1)
    assert snapshot["ev_count"] == 2 and [ev["vin"] for ev in snapshot["evs"]] == ["VIN2"]


def test_bad_battery_records_are_skipped_and_counted() -> None:
    fleet = FleetView()
    good = health("VIN1", "2026-01-05", 95.0)
    for bad in (
        None,  # not a JSON object
        {**good, "vin": ""},
        {**good, "vin": 7},
        {key: value for key, value in good.items() if key != "vin"},
        {**good, "week": "soon"},
        {**good, "week": 20260105},
    ):
        assert fleet.record_battery_health(bad) is False
    assert fleet.record_battery_health(decode_record(b"{not json")) is False
    odd = {**good, "soh": "95", "soh_lower": [1], "nominal_source": 3, "end_of_life": {"date": 1}}
    assert fleet.record_battery_health(odd) is True
    (ev,) = fleet.snapshot()["evs"]
    assert (ev["soh"], ev["soh_lower"], ev["nominal_source"], ev["trend"]) == (None, None, None, [])
    assert ev["end_of_life"] == dict.fromkeys(
        ("threshold", "date", "date_lower", "date_upper", "odometer_km")
    )
    assert fleet.battery_rejected == 7 and fleet.battery_records_seen == 1


def test_evs_at_or_under_the_end_of_life_soh_are_counted_most_worn_first() -> None:
    fleet = FleetView()
    for vin, soh in (("VIN-A", 85.0), ("VIN-B", 80.0), ("VIN-C", 79.2), ("VIN-D", None)):
        fleet.record_battery_health(health(vin, "2026-01-05", soh))
    snapshot = fleet.snapshot(eol_soh=80.0)
    assert [ev["vin"] for ev in snapshot["evs"]] == ["VIN-C", "VIN-B", "VIN-A", "VIN-D"]
    assert snapshot["evs_under_threshold"] == 2 and snapshot["eol_soh"] == 80.0
    assert fleet.snapshot(eol_soh=70.0)["evs_under_threshold"] == 0


def test_the_snapshot_adds_the_evs_and_keeps_the_assets_fields() -> None:
    fleet = FleetView()
    fleet.record_prediction(prediction("E1", 50.0, "2026-01-01T00:00:01Z"))
    fleet.record_battery_health(health("VIN1", "2026-01-05", 95.0))
    snapshot = fleet.snapshot()
    assert list(snapshot) == [
        "assets",
        "asset_count",
        "classes",
        "under_threshold",
        "threshold",
        "predictions_seen",
        "predictions_per_minute",
        "evs",
        "ev_count",
        "evs_under_threshold",
        "eol_soh",
    ]
    assert snapshot["asset_count"] == 1 and snapshot["ev_count"] == 1
    assert set(snapshot["evs"][0]) == {
        "vin",
        "week",
        "soh",
        "soh_lower",
        "soh_upper",
        "nominal_kwh",
        "nominal_source",
        "end_of_life",
        "trend",
    }
