"""The one settings object: priorities, parsing and secret masking (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamapp.runtime.config import aiokafka_kwargs, faust_credentials
from streamapp.settings import Settings


def test_defaults_are_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_dev_env_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".streamapp").mkdir()
    (tmp_path / ".streamapp/dev.env").write_text(
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1111\nS3_BUCKET=from-dev-env\n"
    )
    monkeypatch.delenv("S3_BUCKET", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    settings = Settings()
    assert settings.s3_bucket == "from-dev-env"
    assert settings.kafka_bootstrap_servers == "broker:9092"


def test_secrets_are_masked(monkeypatch) -> None:
    settings = Settings(s3_secret="topsecret", kafka_sasl_password="hunter2", api_key="k3y")
    shown = str(settings.public_dict()) + repr(settings) + str(settings)
    for secret in ("topsecret", "hunter2", "k3y"):
        assert secret not in shown


def test_comma_lists_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("FEATURE_SIGNALS", "s2, s3,s4")
    assert Settings().feature_signals == ["s2", "s3", "s4"]


def test_sasl_and_tls_reach_the_kafka_clients(tmp_path: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="fleet",
        kafka_sasl_password="pw",
    )
    kwargs = aiokafka_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "fleet" and kwargs["sasl_plain_password"] == "pw"
    assert kwargs["ssl_context"] is not None
    credentials = faust_credentials(settings)
    assert credentials is not None and credentials.username == "fleet"
    assert faust_credentials(Settings()) is None


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError):
        Settings(buffer_size=0)
    with pytest.raises(ValueError):
        Settings(window_kind="sliding")


def test_models_url_must_name_an_s3_bucket() -> None:
    assert Settings(models_url="s3://fleet-models/prod").models_url == "s3://fleet-models/prod"
    for wrong in ("http://fleet-models/prod", "s3:///prod", "fleet-models"):
        with pytest.raises(ValueError, match="MODELS_URL"):
            Settings(models_url=wrong)
