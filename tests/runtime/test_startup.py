"""A worker started before its brokers waits for them instead of crashing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from streamapp.dev.stack import free_port
from streamapp.runtime.startup import BrokersUnreachable, wait_for_brokers
from streamapp.settings import Settings
from tests.conftest import provision, settings_from_env, stack_env, start_test_broker
from tests.support.tcp_proxy import TcpProxy


def test_no_broker_within_the_timeout_is_a_clear_error() -> None:
    settings = Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", kafka_startup_timeout_s=1
    )
    started = time.monotonic()
    with pytest.raises(BrokersUnreachable, match="KAFKA_STARTUP_TIMEOUT_S"):
        asyncio.run(wait_for_brokers(settings))
    assert time.monotonic() - started < 10


def test_a_worker_started_before_its_broker_waits_then_runs(
    s3_server: str, start_worker, tmp_path: Path
) -> None:
    port = free_port()
    env = stack_env(f"127.0.0.1:{port}", s3_server)
    worker = start_worker(env)
    deadline = time.monotonic() + 60
    while "event=waiting_for_brokers" not in worker.log_tail(200):
        assert worker.alive(), worker.log_tail()
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    time.sleep(3)  # a few more failed attempts: still waiting, not exited
    assert worker.alive(), worker.log_tail()
    # The late broker advertises `port`, where a proxy in front of it then listens.
    broker = start_test_broker(tmp_path / "late-broker", advertised_ports={1: port})
    proxy = TcpProxy("127.0.0.1", _listen_port(broker), port=port).start()
    try:
        provision(settings_from_env(env))
        worker.wait_ready(timeout=120)
        assert "event=brokers_reachable" in worker.log_tail(400)
    finally:
        worker.stop()
        proxy.cut()
        broker.stop()


def _listen_port(broker) -> int:
    """The port the broker itself listens on (behind its advertised proxy)."""
    return broker.nodes[0].port if broker.kind == "kafka" else broker.port
