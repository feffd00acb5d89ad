"""Dashboards and alert rules as code: well-formed, and every metric they use is extractable."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
ALERTS = MONITORING / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bstreamapp_[a-z0-9_]+\b")
REQUIRED_ALERT_METRICS = {
    "lag growing": "streamapp_consumer_lag_messages",
    "DLQ rate": "streamapp_dead_letters_total",
    "S3 errors": "streamapp_archive_s3_errors_total",
    "no predictions": "streamapp_rul_predictions_total",
    "model not loaded": "streamapp_rul_model_loaded",
}


def dashboard_exprs() -> dict[str, list[str]]:
    exprs: dict[str, list[str]] = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        exprs[path.stem] = [t["expr"] for p in board["panels"] for t in p["targets"]]
    return exprs


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def referenced_metrics() -> dict[str, set[str]]:
    """Every `streamapp_*` series named in a dashboard or an alert, with where it is used."""
    used: dict[str, set[str]] = defaultdict(set)
    for board, exprs in dashboard_exprs().items():
        for expr in exprs:
            for name in METRIC.findall(expr):
                used[name].add(f"dashboard {board}")
    for rule in alert_rules():
        for name in METRIC.findall(rule["expr"]):
            used[name].add(f"alert {rule['alert']}")
    return dict(used)


def test_three_dashboards_with_unique_uids_and_panels_on_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert [p.stem for p in DASHBOARDS] == ["archive", "pipeline", "predictions"]
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)) >= 8, path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert panel["targets"] and all(METRIC.search(t["expr"]) for t in panel["targets"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
    assert len(uids) == len(DASHBOARDS)


def test_alert_rules_cover_the_operational_risks() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and "for" in rule
    used = referenced_metrics()
    for risk, metric in REQUIRED_ALERT_METRICS.items():
        assert any(w.startswith("alert") for w in used.get(metric, ())), risk


def test_dashboards_cover_the_issue_panels() -> None:
    exprs = {board: " ".join(e) for board, e in dashboard_exprs().items()}
    for metric in (
        "streamapp_ingest_messages_total",
        "streamapp_consumer_lag_messages",
        "streamapp_dead_letters_total",
        "streamapp_feature_latency_seconds_bucket",
        "streamapp_battery_sessions_total",
        "streamapp_battery_weeks_total",
        "streamapp_battery_soh_percent_bucket",
        "streamapp_battery_vins_under_threshold",
    ):
        assert metric in exprs["pipeline"], metric
    for metric in (
        "streamapp_archive_buffer_messages",
        "streamapp_archive_flush_seconds_bucket",
        "streamapp_archive_compression_ratio",
        "streamapp_archive_s3_errors_total",
        "streamapp_archive_objects_written_total",
    ):
        assert metric in exprs["archive"], metric
    for metric in (
        "streamapp_rul_predicted_cycles_bucket",
        "streamapp_rul_assets_under_threshold",
        "streamapp_rul_interval_width_cycles_bucket",
        "streamapp_rul_model_loaded",
        "streamapp_rul_inference_seconds_bucket",
        "streamapp_rul_batch_size_bucket",
    ):
        assert metric in exprs["predictions"], metric
