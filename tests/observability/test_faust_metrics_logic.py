"""Lag arithmetic and the scrape-time collector before the app runs (no broker)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from streamapp.observability.faust_metrics import FaustStateCollector, partition_lag


def test_lag_is_highwater_minus_position_and_unknown_until_a_fetch() -> None:
    assert partition_lag(120, 100) == 20
    assert partition_lag(100, 100) == 0
    assert partition_lag(100, 130) == 0  # a stale highwater never shows negative lag
    assert partition_lag(None, 100) is None
    assert partition_lag(100, None) is None


def test_collector_without_a_running_app_exposes_empty_families() -> None:
    families = {family.name: family for family in FaustStateCollector().collect()}
    assert set(families) == {
        "streamapp_consumer_lag_messages",
        "streamapp_consumer_highwater_offset",
        "streamapp_faust_assigned_partitions",
        "streamapp_faust_table_keys",
    }
    assert all(not family.samples for family in families.values())
    assert REGISTRY.get_sample_value("streamapp_faust_commits_total") is not None
