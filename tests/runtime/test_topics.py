"""`topics apply` against the real broker: creates, is idempotent, reports drift."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from streamapp.battery.agent import TABLE_NAME as BATTERY_TABLE
from streamapp.features.agent import TABLE_NAME as FEATURE_TABLE
from streamapp.features.agent import repartition_topic_name
from streamapp.rul.serving.agent import TABLE_NAME as RUL_TABLE
from streamapp.runtime import topics
from streamapp.settings import Settings
from tests.conftest import STACK_SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_topics_yaml_declares_every_topic() -> None:
    specs = {spec.name: spec for spec in topics.load_specs(ROOT / "topics.yaml")}
    for name in ("telemetry", "tesla_V", "extracted-features", "rul-predictions"):
        assert name in specs and specs[name].partitions == 8
    for source in ("telemetry", "tesla_V", "extracted-features"):
        assert f"{source}.dlq" in specs
    assert all(spec.configs.get("cleanup.policy") for spec in specs.values())


def test_topics_yaml_declares_the_workers_internal_topics_for_the_group() -> None:
    settings = Settings(_env_file=None, kafka_group_id="fleet-a", kafka_replication_factor=3)
    specs = {spec.name: spec for spec in topics.load_specs(ROOT / "topics.yaml", settings)}
    internal = {
        repartition_topic_name(settings),
        f"fleet-a-{FEATURE_TABLE}-changelog",
        f"fleet-a-{RUL_TABLE}-changelog",
        f"fleet-a-{BATTERY_TABLE}-changelog",
    }
    assert {name for name, spec in specs.items() if spec.internal} == internal
    assert {spec.replication_factor for spec in specs.values()} == {3}
    groups = {name: spec.copartition for name, spec in specs.items() if spec.copartition}
    assert groups == {
        "telemetry": "features",
        repartition_topic_name(settings): "features",
        f"fleet-a-{FEATURE_TABLE}-changelog": "features",
        f"fleet-a-{BATTERY_TABLE}-changelog": "features",
        "extracted-features": "rul",
        f"fleet-a-{RUL_TABLE}-changelog": "rul",
    }


def test_bad_topics_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text("topics:\n  - partitions: 3\n")
    with pytest.raises(topics.TopicsFileError, match="needs a name"):
        topics.load_specs(path)


def test_apply_creates_then_is_idempotent_and_reports_drift(kafka_broker: str) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_broker)
    name = f"apply-{uuid.uuid4().hex[:8]}"
    specs = [topics.TopicSpec(name, 4, 1, {"cleanup.policy": "delete"})]
    first = asyncio.run(topics.apply(settings, specs))
    assert first.created == [name]
    second = asyncio.run(topics.apply(settings, specs))
    assert second.created == [] and second.unchanged == [name] and second.drift == []
    other = [topics.TopicSpec(name, 4, 1, {"cleanup.policy": "compact"})]
    drift = asyncio.run(topics.apply(settings, other))
    assert drift.created == [] and drift.drift == [
        f"{name}: cleanup.policy=delete (declared compact)"
    ]


def test_apply_grows_a_free_topic_and_refuses_a_copartitioned_one(kafka_broker: str) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_broker)
    free, keyed, state = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("free", "keyed", "state"))
    asyncio.run(
        topics.apply(
            settings,
            [
                topics.TopicSpec(free, 4, 1),
                topics.TopicSpec(keyed, 4, 1, copartition="g"),
                topics.TopicSpec(state, 4, 1, copartition="g"),
            ],
        )
    )
    more = [
        topics.TopicSpec(free, 6, 1),
        topics.TopicSpec(keyed, 6, 1, copartition="g"),
        topics.TopicSpec(state, 4, 1, copartition="g"),
    ]
    report = asyncio.run(topics.apply(settings, more))
    found = asyncio.run(topics.describe(settings))
    if STACK_SETTINGS.streamapp_broker == "tansu":  # no CreatePartitions there
        assert report.grown == [] and report.drift[0].startswith(f"{free}: 4 partitions < 6")
    else:
        assert report.grown == [f"{free}: 4 -> 6"] and found[free] == 6
    assert found[keyed] == 4
    (refused,) = report.refused
    assert refused.startswith(f"{keyed}: 4 -> 6: co-partitioned with {state} (group g)")


def test_worker_topics_are_created_when_missing_and_existing_ones_left_alone(
    kafka_broker: str,
) -> None:
    unique = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=kafka_broker,
        topic_telemetry=f"telemetry-{unique}",
        topic_tesla=f"tesla-{unique}",
        topic_features=f"features-{unique}",
        topic_predictions=f"predictions-{unique}",
        topic_charge_sessions=f"sessions-{unique}",
        topic_battery_health=f"health-{unique}",
        topic_partitions=3,
    )
    asyncio.run(topics.apply(settings, [topics.TopicSpec(settings.topic_tesla, 2, 1)]))
    specs = topics.worker_specs(settings)
    created = asyncio.run(topics.ensure_topics(settings, specs))
    assert sorted(created) == sorted(s.name for s in specs if s.name != settings.topic_tesla)
    found = asyncio.run(topics.describe(settings))
    deadline = time.monotonic() + 15
    while not set(created) <= set(found) and time.monotonic() < deadline:
        time.sleep(0.2)  # a created topic reaches every broker's metadata a moment later
        found = asyncio.run(topics.describe(settings))
    assert found[settings.topic_tesla] == 2  # existing: not touched
    assert all(found[name] == 3 for name in created)
    assert asyncio.run(topics.ensure_topics(settings, specs)) == []
