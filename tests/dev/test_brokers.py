"""Which embedded broker starts, and why (no broker started here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamapp.dev import kafka
from streamapp.dev.brokers import choose
from streamapp.settings import Settings


def test_apache_kafka_unless_tansu_is_asked_for(tmp_path: Path) -> None:
    if kafka.missing_requirement(tmp_path) is not None:
        pytest.skip("this machine lacks Java or Maven")
    assert choose("kafka", tmp_path) == ("kafka", None)
    assert choose("tansu", tmp_path) == ("tansu", None)


def test_without_java_the_stack_falls_back_to_tansu_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    kind, why = choose("kafka", tmp_path)
    assert kind == "tansu"
    assert why == "Apache Kafka needs Java 17 and Maven (java is not on PATH): using Tansu instead"


def test_without_maven_cached_jars_are_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/java" if name == "java" else None)
    assert "mvn is not on PATH" in (kafka.missing_requirement(tmp_path) or "")
    jars = kafka.jars_dir(tmp_path)
    jars.mkdir(parents=True)
    (jars / ".complete").write_text(kafka.kafka_version())
    assert kafka.missing_requirement(tmp_path) is None
    assert kafka.ensure_jars(tmp_path) == jars  # no Maven run


def test_the_pom_pins_one_kafka_version() -> None:
    version = kafka.kafka_version()
    assert version.split(".")[0] == "4"
    assert "${kafka.version}" in kafka.POM.read_text()


def test_console_tool_wrappers_run_kafkas_main_classes(tmp_path: Path) -> None:
    written = kafka.install_tools(tmp_path, tmp_path / "cache", echo=lambda line: None)
    assert sorted(path.name for path in written) == sorted(kafka.TOOLS)
    producer = (tmp_path / "kafka-console-producer").read_text()
    assert producer.startswith("#!/bin/sh\n")
    assert "org.apache.kafka.tools.ConsoleProducer" in producer
    assert str(kafka.jars_dir(tmp_path / "cache")) in producer


def test_a_cluster_id_starting_with_a_dash_formats(tmp_path: Path) -> None:
    """Base64 ids may start with "-", which argparse would take for an option."""
    cache = Settings(_env_file=None).kafka_jars_cache
    if kafka.missing_requirement(cache) is not None:
        pytest.skip("this machine lacks Java or Maven")
    cluster = kafka.KafkaCluster(tmp_path, cache)
    (tmp_path / "cluster.json").write_text(
        '{"cluster_id": "-MBENRIIR_e6Fmz5Djlqxw", "nodes": [{}]}'
    )
    cluster_id = cluster.layout()
    node = cluster.nodes[0]
    node.directory.mkdir(parents=True)
    node.config_path.write_text(cluster._config(node))
    cluster._format(kafka.ensure_jars(cache), node, cluster_id)
    assert "cluster.id=-MBENRIIR_e6Fmz5Djlqxw" in (node.log_dir / "meta.properties").read_text()
