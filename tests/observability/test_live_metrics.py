"""/metrics of a live worker: counters move with traffic, and dashboards point at real series."""

from __future__ import annotations

import pytest

from tests.observability.test_monitoring_files import referenced_metrics
from tests.support.ops import counter_total, exposed_names, scrape, wait_for

pytestmark = pytest.mark.integration

# The counter each agent increments for normal traffic, checked when the agent's
# metrics are registered in the worker (an agent that is not wired in has none).
AGENT_COUNTERS = {
    "ingest (validation)": "streamapp_ingest_messages",
    "ingest (dead letters)": "streamapp_dead_letters",
    "ingest (tesla)": "streamapp_tesla_normalised",
    "http ingestion": "streamapp_http_ingest_records",
    "faust consumer": "streamapp_faust_messages_received",
    "faust streams": "streamapp_faust_events",
    "faust producer": "streamapp_faust_messages_sent",
    "faust commits": "streamapp_faust_commits",
    "archive": "streamapp_archive_messages",
    "features": "streamapp_feature_windows_emitted",
}
ALWAYS_PRESENT = {
    "ingest (validation)",
    "ingest (dead letters)",
    "http ingestion",
    "faust consumer",
    "faust streams",
}


RUL_COUNTERS = ("streamapp_rul_predictions", "streamapp_rul_predictions_skipped")


def rul_counter(families) -> str:
    """Predictions move when a model is loaded; otherwise the skips (reason no model) do.

    Read from the latest scrape: the model loads after the worker reports ready, so
    the state seen before traffic may be "no model" even though predictions follow.
    """
    loaded = families.get("streamapp_rul_model_loaded")
    if loaded and any(sample.value == 1 for sample in loaded.samples):
        return RUL_COUNTERS[0]
    return RUL_COUNTERS[1]


def streamapp_counters(families) -> dict[str, float]:
    return {
        name: counter_total(families, name)
        for name, family in families.items()
        if name.startswith("streamapp_") and family.type == "counter"
    }


def test_every_agents_counters_move_with_traffic(scraped) -> None:
    worker, _, before = scraped
    agents = {agent: name for agent, name in AGENT_COUNTERS.items() if name in before}
    assert set(agents) >= ALWAYS_PRESENT, set(AGENT_COUNTERS) - set(agents)
    with_rul = RUL_COUNTERS[0] in before
    start = streamapp_counters(before)

    def stuck_counters(now) -> dict[str, str]:
        expected = {**agents, "rul": rul_counter(now)} if with_rul else agents
        return {
            a: name
            for a, name in expected.items()
            if counter_total(now, name) <= start.get(name, 0.0)
        }

    def all_moved():
        now = scrape(worker)
        return now if not stuck_counters(now) else None

    try:
        after = wait_for(all_moved, 90, "every agent's counter to move", every=2.0)
    except AssertionError:
        stuck = stuck_counters(scrape(worker))
        raise AssertionError(f"counters that did not move: {stuck}\n{worker.log_tail()}") from None
    end = streamapp_counters(after)
    assert set(start) <= set(end)
    for name, value in start.items():
        assert end[name] >= value, f"{name} went backwards"
    assert counter_total(after, "streamapp_ingest_messages", result="invalid") >= 2
    assert counter_total(after, "streamapp_http_ingest_records", result="accepted") >= 2


# Dashboard series that only move under faults or conditions this traffic does not make.
MOVE_ONLY_UNDER_FAULTS = {
    "streamapp_archive_s3_errors_total": "S3 errors",
    "streamapp_archive_s3_retries_total": "S3 errors",
    "streamapp_archive_replayed_skipped_total": "a replay after a crash",
    "streamapp_archive_compacted_rows_total": "compaction, every COMPRESSION_INTERVAL",
    "streamapp_archive_temp_deleted_total": "temp objects older than TEMP_RETENTION",
    "streamapp_faust_send_errors_total": "a send the broker refused",
    "streamapp_faust_rebalances_total": "a rebalance (the worker's first is before traffic)",
    "streamapp_faust_rebalance_seconds_count": "a rebalance",
    "streamapp_table_recovery_seconds_count": "a table recovery",
    "streamapp_faust_topic_buffer_full_total": "backpressure",
    "streamapp_feature_late_events_total": "records later than the grace",
    "streamapp_faust_event_processing_seconds_count": "a Faust stream (agents: batch routes)",
    "streamapp_rul_predictions_skipped_total": "records the loaded model cannot predict",
    "streamapp_battery_sessions_total": "a closed charge session (tests/battery/test_worker.py)",
    "streamapp_battery_weeks_total": "an EV's ISO week past its grace (tests/battery)",
    "streamapp_battery_soh_percent_count": "an EV's week with a SoH estimate (tests/battery)",
}


def moving_series(name: str) -> str | None:
    """The sample a dashboard series moves by: counters' totals, histograms' counts."""
    for suffix in ("_total", "_count"):
        if name.endswith(suffix):
            return name
    for suffix in ("_bucket", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)] + "_count"
    return None  # a gauge: its level, not its movement, is the panel


def sample_sum(families, sample_name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in families.values()
        for sample in family.samples
        if sample.name == sample_name
        and all(sample.labels.get(key) == value for key, value in labels.items())
    )


def test_every_dashboard_series_moves_with_traffic_and_routed_agents_are_counted(
    scraped,
) -> None:
    """Each counter and histogram a dashboard or alert uses moves with this traffic
    (the fault-only ones excepted), and the Faust-level panels include the batch-routed
    agents: their events, bulk sends and table writes bypass Faust's sensor."""
    worker, env, before = scraped
    group = env["KAFKA_GROUP_ID"]
    series = {moving_series(name) for name in referenced_metrics()} - {None}
    expected = sorted(series - set(MOVE_ONLY_UNDER_FAULTS))
    routed = {
        "events into the RUL agent": (
            "streamapp_faust_events_total",
            {"topic": env["TOPIC_FEATURES"]},
        ),
        "predictions sent": (
            "streamapp_faust_messages_sent_total",
            {"topic": env["TOPIC_PREDICTIONS"]},
        ),
        "feature state changelog sent": (
            "streamapp_faust_messages_sent_total",
            {"topic": f"{group}-feature-windows-changelog"},
        ),
        "feature table writes": (
            "streamapp_faust_table_operations_total",
            {"table": "feature-windows", "operation": "set"},
        ),
        "RUL table writes": (
            "streamapp_faust_table_operations_total",
            {"table": "rul-sequences", "operation": "set"},
        ),
    }

    def stuck(now) -> list[str]:
        names = [n for n in expected if sample_sum(now, n) <= sample_sum(before, n)]
        return names + [
            what
            for what, (name, labels) in routed.items()
            if sample_sum(now, name, **labels) <= sample_sum(before, name, **labels)
        ]

    try:
        wait_for(lambda: not stuck(scrape(worker)), 90, "every dashboard series to move", 2.0)
    except AssertionError:
        raise AssertionError(f"did not move: {stuck(scrape(worker))}") from None


def test_consumer_lag_is_exposed_per_partition_from_fetch_highwaters(scraped) -> None:
    worker, env, _ = scraped

    def lag_samples():
        family = scrape(worker).get("streamapp_consumer_lag_messages")
        samples = [s for s in family.samples if s.labels["topic"] == env["TOPIC_TELEMETRY"]]
        return samples if samples else None

    samples = wait_for(lag_samples, 60, "lag samples of the telemetry topic")
    assert {s.labels["partition"] for s in samples} <= {str(p) for p in range(8)}
    assert all(s.value >= 0 for s in samples)
    drained = wait_for(lambda: all(s.value == 0 for s in lag_samples()), 90, "lag to drain to zero")
    assert drained
    highwaters = scrape(worker)["streamapp_consumer_highwater_offset"].samples
    telemetry = [s for s in highwaters if s.labels["topic"] == env["TOPIC_TELEMETRY"]]
    assert sum(s.value for s in telemetry) >= 2 * 90 + 2


def test_every_metric_in_dashboards_and_alerts_is_exposed_by_a_live_worker(scraped) -> None:
    worker, _, _ = scraped
    exposed = exposed_names(scrape(worker))
    missing = {
        name: sorted(where) for name, where in referenced_metrics().items() if name not in exposed
    }
    assert not missing, f"metrics used by dashboards/alerts but absent from /metrics: {missing}"


def test_health_endpoints(scraped) -> None:
    worker, _, _ = scraped
    assert worker.get("/health/live")[0] == 200
    status, body = worker.get("/health/ready")
    assert status == 200 and b'"tables_recovered":true' in body.replace(b" ", b"")
