"""docker-compose.yml cannot run here (no Docker engine): check its structure instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamapp.dev.kafka import kafka_version

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("worker-1", "worker-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def test_every_part_of_the_stack_is_a_service(services: dict[str, Any]) -> None:
    assert {"kafka", "topics", "minio", "minio-init", *WORKERS, "prometheus", "grafana"} <= set(
        services
    )
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"  # the embedded one
    assert services["minio"]["image"].startswith("minio/minio:")
    assert services["minio-init"]["image"].startswith("minio/mc:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name, service in services.items():
        assert ":latest" not in service["image"] or service.get("build"), name


def test_kafka_runs_kraft_single_node_with_a_healthcheck(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "zookeeper" not in json.dumps(kafka).lower()
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert "kafka-broker-api-versions" in " ".join(kafka["healthcheck"]["test"])
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])


def test_topics_are_created_once_by_streamapp_topics_apply(services: dict[str, Any]) -> None:
    topics = services["topics"]
    assert topics["command"][:3] == ["streamapp", "topics", "apply"]
    assert topics["restart"] == "no"
    assert depends(topics) == {"kafka": "service_healthy"}
    assert topics["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_minio_bucket_is_created_with_the_workers_credentials(services: dict[str, Any]) -> None:
    init = services["minio-init"]
    script = " ".join(init["command"])
    worker_env = services["worker-1"]["environment"]
    assert f"mc mb --ignore-existing local/{worker_env['S3_BUCKET']}" in script
    assert depends(init) == {"minio": "service_healthy"}
    assert services["minio"]["environment"]["MINIO_ROOT_USER"] == worker_env["S3_KEY"]
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == worker_env["S3_SECRET"]
    assert "mc" in services["minio"]["healthcheck"]["test"]


@pytest.mark.parametrize("name", WORKERS)
def test_workers_are_configured_for_the_stack(services: dict[str, Any], name: str) -> None:
    from streamapp.settings import Settings

    worker = services[name]
    assert worker["build"] == "." and worker["command"] == ["streamapp", "worker"]
    env = worker["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["S3_ENDPOINT"] == "http://minio:9000"
    assert env["WEB_HOST"] == "0.0.0.0"
    known = {field.upper() for field in Settings.model_fields}
    assert set(env) <= known, set(env) - known
    assert depends(worker) == {
        "kafka": "service_healthy",
        "topics": "service_completed_successfully",
        "minio-init": "service_completed_successfully",
        "models-init": "service_completed_successfully",
    }
    assert env["MODELS_URL"] == f"s3://{env['S3_BUCKET']}/models"
    assert env["MODELS_DIR"].startswith(env["DATA_DIR"] + "/")  # a writable mirror
    assert not any(":/app/models" in volume for volume in worker["volumes"])
    assert "/health/ready" in " ".join(worker["healthcheck"]["test"])
    assert any(v.endswith(":" + env["DATA_DIR"]) for v in worker["volumes"])
    assert any(f":{env['WEB_PORT']}" in port for port in worker["ports"])


def test_the_shipped_models_are_published_to_the_bucket_once(services: dict[str, Any]) -> None:
    init = services["models-init"]
    assert init["command"] == ["streamapp", "models", "upload", "--models-dir", "/app/models"]
    assert init["restart"] == "no" and init["environment"]["MODELS_URL"].startswith("s3://")
    assert depends(init) == {"minio-init": "service_completed_successfully"}


def test_workers_share_a_group_but_not_state_or_host_ports(services: dict[str, Any]) -> None:
    workers = [services[name] for name in WORKERS]
    assert len({w["environment"]["KAFKA_GROUP_ID"] for w in workers}) == 1
    assert len({w["volumes"][0] for w in workers}) == len(workers)
    assert len({w["ports"][0].split(":")[0] for w in workers}) == len(workers)


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in declared, (name, source)


def test_monitoring_mounts_point_at_files_in_the_repository(services: dict[str, Any]) -> None:
    mounts = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
                mounts[target] = ROOT / source
    prometheus = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert "/etc/prometheus/alerts.yml" in prometheus["rule_files"]
    assert "/etc/prometheus/alerts.yml" in mounts
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == [f"{name}:6066" for name in WORKERS]
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards/streamapp.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert sorted(p.name for p in mounts[dashboards_path].glob("*.json")) == [
        "archive.json",
        "pipeline.json",
        "predictions.json",
    ]
    assert depends(services["grafana"]) == {"prometheus": "service_healthy"}


def test_dockerfile_pins_cpu_torch_and_runs_the_worker() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    torch_line = dockerfile.index("torch==2.13.0")
    assert "download.pytorch.org/whl/cpu" in dockerfile[dockerfile.rfind("\n", 0, torch_line) :]
    assert torch_line < dockerfile.index("pip install .")
    assert 'CMD ["streamapp", "worker"]' in dockerfile
    assert "/health/ready" in dockerfile
