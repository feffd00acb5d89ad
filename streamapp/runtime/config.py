"""One translation of the settings into Kafka client arguments (Faust and aiokafka)."""

from __future__ import annotations

import ssl
from typing import Any

import faust

from streamapp.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context when the protocol needs one, trusting `kafka_ssl_cafile` if set."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection arguments for aiokafka producers, consumers and admin clients."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's credentials object for the configured security protocol."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username or "",
        password=password,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
    )


def faust_broker_url(settings: Settings) -> list[str]:
    """Faust wants `kafka://host:port` URLs."""
    return [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")]


def faust_client_options(settings: Settings) -> dict[str, Any]:
    """The Faust app options for its Kafka clients that a worker and the benchmarks'
    in-process app share: group timing, commit interval, producer linger and timeout,
    poll size."""
    return {
        "broker": faust_broker_url(settings),
        "topic_disable_leader": True,
        "broker_session_timeout": settings.kafka_session_timeout_s,
        "broker_rebalance_timeout": settings.kafka_rebalance_timeout_s,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval_s,
        "broker_commit_interval": 1.0,
        "producer_linger": 0.005,
        "producer_request_timeout": settings.kafka_producer_request_timeout_s,
        "broker_max_poll_records": settings.kafka_max_poll_records,
    }
