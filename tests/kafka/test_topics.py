"""`topics apply` against the real broker: creates, is idempotent, reports drift."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from streamapp.kafka import topics
from streamapp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_topics_yaml_declares_every_topic() -> None:
    specs = {spec.name: spec for spec in topics.load_specs(ROOT / "topics.yaml")}
    for name in ("telemetry", "tesla_V", "extracted-features", "rul-predictions"):
        assert name in specs and specs[name].partitions == 8
    for source in ("telemetry", "tesla_V", "extracted-features"):
        assert f"{source}.dlq" in specs
    assert all(spec.configs.get("cleanup.policy") for spec in specs.values())


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
    more = [topics.TopicSpec(name, 6, 1, {"cleanup.policy": "delete"})]
    drift = asyncio.run(topics.apply(settings, more))
    assert drift.created == []
    assert drift.drift == [f"{name}: 4 partitions < 6 declared"]
    assert asyncio.run(topics.describe(settings))[name] == 4
