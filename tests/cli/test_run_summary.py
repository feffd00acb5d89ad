"""`streamapp run`'s live summary line (pure formatting, no stack)."""

from __future__ import annotations

from streamapp.cli.run import summary_line


def test_the_summary_names_each_class_and_the_most_urgent_assets() -> None:
    families = {"streamapp_rul_predictions": [({}, 42.0)]}
    fleet = {
        "classes": {"rotating": 2, "turbofan": 3},
        "assets": [
            {
                "asset_id": "PUMP-0002",
                "asset_class": "rotating",
                "rul": 7.4,
                "lower": 1,
                "upper": 20,
            },
            {"asset_id": "ENGINE-0001", "asset_class": "turbofan", "rul": 30.2},
        ],
    }
    line = summary_line(families, 12.0, fleet)
    assert "predictions=42" in line
    assert "| rotating=2 turbofan=3  |" in line
    assert line.endswith(
        "lowest RUL: PUMP-0002 (rotating) RUL 7 [1-20], ENGINE-0001 (turbofan) RUL 30"
    )
    assert summary_line({}, 1.0) == "[    1s] worker starting..."


def test_the_summary_ends_with_the_most_worn_batteries() -> None:
    fleet = {
        "classes": {"ev": 2},
        "evs": [
            {"vin": "5YJ3E1EA000000001", "soh": 91.26},
            {"vin": "5YJ3E1EA000000002", "soh": None},
        ],
    }
    line = summary_line({"streamapp_rul_predictions": [({}, 0.0)]}, 3.0, fleet)
    assert line.endswith("| ev=2  | lowest SoH: 5YJ3E1EA000000001 91.3%")
