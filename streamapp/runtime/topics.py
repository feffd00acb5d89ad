"""Declarative topics: `topics.yaml` is the truth; `apply` creates what is missing.

Every topic the product uses is declared, the workers' internal ones too (table
changelogs, the feature repartition topic), their names templated on the consumer
group (`{group_id}`) and their replication on `{replication_factor}`
(KAFKA_REPLICATION_FACTOR). Apply never deletes, shrinks or alters configs (drift is
reported for an operator to decide on). It grows a topic's partitions where that is
safe: not for a topic of a `copartition` group, whose keys must stay on the partition
of their table state (growing one would send an asset's records to another partition
than its windows), so those are refused with the reason. Brokers without
CreatePartitions (Tansu) report the growth as drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)
    copartition: str | None = None  # topics keyed alike with table state, grown never
    internal: bool = False  # created by the workers too (changelogs, repartition)


@dataclass(slots=True)
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "created": self.created,
            "unchanged": self.unchanged,
            "grown": self.grown,
            "refused": self.refused,
            "drift": self.drift,
        }


class TopicsFileError(ValueError):
    """topics.yaml is missing a field or has a wrong type."""


def load_specs(path: Path, settings: Settings | None = None) -> list[TopicSpec]:
    """Parse topics.yaml into specs, with defaults and `{group_id}`,
    `{replication_factor}` filled in from `settings` (default settings if None)."""
    settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings' own init argument
    values = {
        "group_id": settings.kafka_group_id,
        "replication_factor": settings.kafka_replication_factor,
    }
    try:
        document: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TopicsFileError(f"cannot read {path}: {exc}") from exc
    defaults = document.get("defaults", {})
    specs = []
    for entry in document.get("topics", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TopicsFileError(f"{path}: every topic needs a name, got {entry!r}")
        try:
            name = entry["name"].format(**values)
            partitions = int(str(entry.get("partitions", defaults.get("partitions", 8))))
            replication = int(
                str(entry.get("replication_factor", defaults.get("replication_factor", 1))).format(
                    **values
                )
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise TopicsFileError(f"{path}: topic {entry['name']}: {exc!r}") from exc
        configs = {str(k): str(v) for k, v in (entry.get("configs") or {}).items()}
        copartition = entry.get("copartition")
        internal = bool(entry.get("internal", False))
        specs.append(TopicSpec(name, partitions, replication, configs, copartition, internal))
    return specs


def worker_specs(settings: Settings) -> list[TopicSpec]:
    """The topics a worker reads or writes under the names of `settings`: its inputs, their
    DLQs, the predictions and the battery topics. Inputs and DLQs take
    KAFKA_MAX_MESSAGE_BYTES (a dead letter copies its input byte for byte); retention is
    left to the broker's default."""
    inputs = (settings.topic_telemetry, settings.topic_tesla, settings.topic_features)
    large = {"max.message.bytes": str(settings.kafka_max_message_bytes)}
    names = [*inputs, *(settings.dlq_topic(name) for name in inputs)]
    specs = [
        TopicSpec(name, settings.topic_partitions, settings.kafka_replication_factor, large)
        for name in names
    ]
    for name in (
        settings.topic_predictions,
        settings.topic_charge_sessions,
        settings.topic_battery_health,
    ):
        specs.append(TopicSpec(name, settings.topic_partitions, settings.kafka_replication_factor))
    return specs


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(request_timeout_ms=15000, **aiokafka_kwargs(settings))


async def describe(settings: Settings) -> dict[str, int]:
    """Topic name -> partition count, as the broker reports them."""
    admin = admin_client(settings)
    await admin.start()
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(list(names)) if names else []
    finally:
        await admin.close()
    return {item["topic"]: len(item["partitions"]) for item in described}


async def _configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Current configs per topic; empty where the broker does not answer DescribeConfigs."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    try:
        responses = await admin.describe_configs(resources)
    except KafkaError:
        return {}
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            _, _, _, name, entries = resource[:5]
            found[name] = {entry[0]: entry[1] for entry in entries}
    return found


async def ensure_topics(settings: Settings, specs: list[TopicSpec]) -> list[str]:
    """Create those of `specs` that do not exist and name them; change nothing else.

    A worker runs this at start: Faust creates only its internal topics, and a consumer
    subscribed to a topic that does not exist yet only sees it at its next metadata
    refresh (minutes), so records produced in between would wait unread.
    """
    admin = admin_client(settings)
    await admin.start()
    created = []
    try:
        existing = set(await admin.list_topics())
        for spec in (spec for spec in specs if spec.name not in existing):
            try:
                await admin.create_topics([_new_topic(spec)])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
    finally:
        await admin.close()
    return created


def _new_topic(spec: TopicSpec) -> NewTopic:
    return NewTopic(
        spec.name,
        num_partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        topic_configs=spec.configs,
    )


async def apply(settings: Settings, specs: list[TopicSpec]) -> ApplyReport:
    """Create missing topics, grow partitions where safe, report the rest; never destroy."""
    report = ApplyReport()
    admin = admin_client(settings)
    await admin.start()
    try:
        existing_names = set(await admin.list_topics())
        existing = {
            item["topic"]: len(item["partitions"])
            for item in (
                await admin.describe_topics(list(existing_names)) if existing_names else []
            )
        }
        missing = [spec for spec in specs if spec.name not in existing]
        for spec in missing:
            try:
                await admin.create_topics([_new_topic(spec)])
                report.created.append(spec.name)
            except TopicAlreadyExistsError:
                report.unchanged.append(spec.name)
        present = [spec for spec in specs if spec.name in existing]
        current = await _configs(admin, [spec.name for spec in present]) if present else {}
        for spec in present:
            problems = []
            have = existing[spec.name]
            if have < spec.partitions:
                reason = growth_refusal(spec, specs)
                if reason:
                    report.refused.append(f"{spec.name}: {have} -> {spec.partitions}: {reason}")
                else:
                    failure = await _grow(admin, spec.name, spec.partitions)
                    if failure:
                        problems.append(f"{have} partitions < {spec.partitions} declared")
                        problems.append(f"not grown: {failure}")
                    else:
                        report.grown.append(f"{spec.name}: {have} -> {spec.partitions}")
            actual = current.get(spec.name, {})
            for key, wanted in spec.configs.items():
                if key in actual and actual[key] != wanted:
                    problems.append(f"{key}={actual[key]} (declared {wanted})")
            if problems:
                report.drift.append(f"{spec.name}: " + "; ".join(problems))
            elif have >= spec.partitions:
                report.unchanged.append(spec.name)
    finally:
        await admin.close()
    return report


def growth_refusal(spec: TopicSpec, specs: list[TopicSpec]) -> str | None:
    """Why `spec`'s partitions may not grow, or None where growing is safe."""
    if spec.copartition is None:
        return None
    peers = sorted(s.name for s in specs if s.copartition == spec.copartition and s != spec)
    return (
        f"co-partitioned with {', '.join(peers)} (group {spec.copartition}): more partitions "
        "would send existing keys to other partitions than their table state; recreate the "
        "whole group with the new count under a new KAFKA_GROUP_ID instead"
    )


async def _grow(admin: AIOKafkaAdminClient, name: str, partitions: int) -> str | None:
    """Grow `name` to `partitions`; the broker's error as text if it refused."""
    try:
        await admin.create_partitions({name: NewPartitions(partitions)})
    except KafkaError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
