"""Security: Kafka authentication reaches the clients, API keys are checked in constant time,
and no secret ever reaches a worker's logs.

The embedded broker (Tansu) can require authentication, but provisioning its users is
outside what the product manages, so SASL and TLS are proven at the configuration
level: the settings become the exact keyword arguments aiokafka and Faust's aiokafka
driver are built with, and aiokafka accepts them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import ssl
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streamapp.runtime.config import aiokafka_kwargs, faust_credentials
from streamapp.settings import Settings
from streamapp.web import auth
from tests.reliability.traffic import produce
from tests.support.ops import counter_total, post, scrape, wait_for

SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PASSWORD = "sasl-pa55-Zq8w"


def kafka_settings(protocol: str, mechanism: str | None = None) -> Settings:
    return Settings(
        kafka_bootstrap_servers="broker-1:9093,broker-2:9093",
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="streamapp",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=SYSTEM_CA if SYSTEM_CA.exists() else None,
    )


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_SSL", "PLAIN"),
        ("SASL_SSL", "SCRAM-SHA-256"),
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SSL", None),
        ("PLAINTEXT", None),
    ],
)
def test_kafka_security_settings_reach_aiokafka_and_faust(protocol: str, mechanism: str) -> None:
    settings = kafka_settings(protocol, mechanism)
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol.startswith("SASL")

    kwargs = aiokafka_kwargs(settings)
    assert kwargs["security_protocol"] == protocol
    assert isinstance(kwargs.get("ssl_context"), ssl.SSLContext) == tls
    if tls:
        assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert kwargs["ssl_context"].check_hostname
    if sasl:
        assert kwargs["sasl_mechanism"] == mechanism
        assert kwargs["sasl_plain_username"] == "streamapp"
        assert kwargs["sasl_plain_password"] == PASSWORD
    else:
        assert not {"sasl_mechanism", "sasl_plain_password"} & set(kwargs)

    async def client_config() -> dict[str, object]:
        """aiokafka validates its arguments at construction (no connection is made)."""
        client = AIOKafkaProducer(**kwargs).client
        return {
            "protocol": client._security_protocol,
            "mechanism": client._sasl_mechanism,
            "password": client._sasl_plain_password,
        }

    config = asyncio.run(client_config())
    assert config["protocol"] == protocol
    if sasl:
        assert (config["mechanism"], config["password"]) == (mechanism, PASSWORD)

    # The worker's Faust app: the credentials object and what its driver gives aiokafka.
    credentials = faust_credentials(settings)
    app = faust.App("security-test", broker="kafka://broker-1:9093", broker_credentials=credentials)
    if protocol == "PLAINTEXT":
        assert credentials is None and app.conf.broker_credentials is None
        return
    driver = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert driver["security_protocol"] == protocol
    assert isinstance(driver.get("ssl_context"), ssl.SSLContext) == tls
    if sasl:
        assert driver["sasl_mechanism"] == mechanism
        assert driver["sasl_plain_username"] == "streamapp"
        assert driver["sasl_plain_password"] == PASSWORD


def test_secrets_are_masked_in_settings_output() -> None:
    settings = Settings(
        kafka_sasl_password=PASSWORD, s3_secret="s3-secret-value", api_key="api-key-value"
    )
    shown = json.dumps(settings.public_dict()) + repr(settings) + str(settings)
    for secret in (PASSWORD, "s3-secret-value", "api-key-value"):
        assert secret not in shown


def test_api_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    settings = Settings(api_key="the-right-key")
    assert auth.key_refusal("the-right-key", settings, "x") is None
    assert auth.key_refusal("the-wrong-key", settings, "x") is not None
    assert auth.key_refusal("the-right-ke", settings, "x") is not None
    assert auth.key_refusal(None, settings, "x") is not None
    assert auth.key_refusal("anything", Settings(api_key=None), "x") is not None
    assert calls == [
        (b"the-right-key", b"the-right-key"),
        (b"the-wrong-key", b"the-right-key"),
        (b"the-right-ke", b"the-right-key"),
    ]


def test_every_endpoint_uses_the_one_key_check() -> None:
    """No module but `streamapp.web.auth` reads the key: no endpoint can compare it with ==."""
    root = Path(auth.__file__).resolve().parents[1]
    readers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "api_key" in path.read_text() and path.name != "settings.py"
    )
    assert readers == ["web/auth.py"]


@pytest.mark.integration
def test_secrets_never_reach_the_worker_logs(isolated_env: dict[str, str], start_worker) -> None:
    from tests.reliability import corpus

    secrets = {
        "S3_SECRET": "S3SECRET-7f3a9c1e55d04b2a",
        "API_KEY": "APIKEY-c0ffee5ecret91d7",
        "KAFKA_SASL_PASSWORD": "SASLPW-0ddba11e4c2d",
    }
    env = {**isolated_env, **secrets, "BUFFER_FLUSH_INTERVAL": "1"}
    worker = start_worker(env, extra_args=("--verbose",))
    worker.wait_ready()
    settings = Settings(**{key.lower(): value for key, value in env.items()})
    messages = corpus.valid_telemetry(5, 200, seed=1) + corpus.bad_messages(
        corpus.TELEMETRY_KINDS, 40, seed=1, big_every=10**9
    )
    asyncio.run(produce(settings, settings.topic_telemetry, messages))
    url = f"{worker.base_url}/api/v1/telemetry"
    record = json.dumps(
        {"asset_id": "HTTP-1", "ts": "2026-11-22T06:00:00Z", "signals": {"s2": 1.0}}
    ).encode()
    wrong = "WRONGKEY-5b1d2e"
    assert post(url, record)[0] == 401
    assert post(url, record, {"X-Api-Key": wrong})[0] == 401
    assert post(url, record, {"X-Api-Key": secrets["API_KEY"]})[0] == 202
    wait_for(
        lambda: "refused" in worker.log_path.read_text(errors="replace"), 30, "refusals logged"
    )
    wait_for(
        lambda: counter_total(scrape(worker), "streamapp_archive_objects_written", layer="temp"),
        60,
        "the archive to write to S3",
    )
    worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert len(log) > 1000
    for secret in (*secrets.values(), wrong):
        assert secret not in log, f"{secret[:8]}... appears in the worker log"
