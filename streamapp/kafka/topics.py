"""Declarative topics: `topics.yaml` is the truth; `apply` creates what is missing.

Apply never deletes or alters: a topic with fewer partitions or other configs than
declared is reported as drift for an operator to decide on (the embedded broker
cannot add partitions, and shrinking is impossible on any Kafka).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streamapp.kafka.config import aiokafka_kwargs
from streamapp.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "unchanged": self.unchanged, "drift": self.drift}


class TopicsFileError(ValueError):
    """topics.yaml is missing a field or has a wrong type."""


def load_specs(path: Path) -> list[TopicSpec]:
    """Parse topics.yaml into specs, with defaults filled in."""
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
            partitions = int(entry.get("partitions", defaults.get("partitions", 8)))
            replication = int(
                entry.get("replication_factor", defaults.get("replication_factor", 1))
            )
        except (TypeError, ValueError) as exc:
            raise TopicsFileError(f"{path}: topic {entry['name']}: {exc}") from exc
        configs = {str(k): str(v) for k, v in (entry.get("configs") or {}).items()}
        specs.append(TopicSpec(entry["name"], partitions, replication, configs))
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


async def apply(settings: Settings, specs: list[TopicSpec]) -> ApplyReport:
    """Create missing topics; report drift of existing ones; never destroy anything."""
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
                await admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=spec.replication_factor,
                            topic_configs=spec.configs,
                        )
                    ]
                )
                report.created.append(spec.name)
            except TopicAlreadyExistsError:
                report.unchanged.append(spec.name)
        present = [spec for spec in specs if spec.name in existing]
        current = await _configs(admin, [spec.name for spec in present]) if present else {}
    finally:
        await admin.close()
    for spec in present:
        problems = []
        if existing[spec.name] < spec.partitions:
            problems.append(f"{existing[spec.name]} partitions < {spec.partitions} declared")
        actual = current.get(spec.name, {})
        for key, wanted in spec.configs.items():
            if key in actual and actual[key] != wanted:
                problems.append(f"{key}={actual[key]} (declared {wanted})")
        if problems:
            report.drift.append(f"{spec.name}: " + "; ".join(problems))
        else:
            report.unchanged.append(spec.name)
    return report
