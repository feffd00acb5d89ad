"""Local table state ahead of its changelog: a one-line exit, or a rebuild when allowed."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from faust.types import TP

from streamapp.features.agent import TABLE_NAME
from streamapp.runtime.config import aiokafka_kwargs
from streamapp.runtime.recovery import EXIT_STALE_STATE, rebuild_allowed, stale_partitions
from streamapp.settings import Settings
from tests.conftest import settings_from_env
from tests.features.test_worker import WINDOW_ENV, read_features, send, simulated


def test_stale_partitions_are_those_whose_local_offset_passes_the_changelog_end() -> None:
    a, b, c, d = (TP("changelog", p) for p in range(4))
    local = Counter({a: 120, b: 9, c: None, d: -1})
    # High watermarks: a's changelog is empty now, b's holds offsets 0..9.
    assert stale_partitions(local, {a: 0, b: 10, c: 0, d: 0}) == {a: (120, -1)}
    assert stale_partitions(local, {a: 121, b: 10}) == {}


def test_rebuilding_is_allowed_on_the_embedded_stack_or_by_the_setting() -> None:
    assert not rebuild_allowed(Settings(_env_file=None))
    assert rebuild_allowed(Settings(_env_file=None, embedded_stack=True))
    assert rebuild_allowed(Settings(_env_file=None, rebuild_stale_state=True))


async def _recreate_empty(settings: Settings, topic: str, partitions: int) -> None:
    """Delete `topic` and create it again, empty (as a broker that lost its log has it)."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        await admin.delete_topics([topic])
        deadline = time.monotonic() + 60
        while True:
            try:
                await admin.create_topics([NewTopic(topic, partitions, 1)])
                return
            except KafkaError:  # still being deleted
                assert time.monotonic() < deadline, f"{topic} was not recreated"
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


@pytest.mark.integration
def test_state_ahead_of_changelog_exits_with_one_line_or_rebuilds_when_allowed(
    isolated_env: dict[str, str], start_worker, tmp_path
) -> None:
    env = {**isolated_env, **WINDOW_ENV}
    settings = settings_from_env(env)
    data_dir = tmp_path / "state"
    first = start_worker(env, name="first", data_dir=data_dir)
    first.wait_ready()
    pairs = simulated(assets=8, count=8 * 60)
    send(env, pairs[: 8 * 30])
    before = windows(read_features(env, 8))
    time.sleep(3)  # table state and its changelog offsets committed
    first.stop()

    changelog = f"{settings.kafka_group_id}-{TABLE_NAME}-changelog"
    asyncio.run(_recreate_empty(settings, changelog, settings.topic_partitions))

    refused = start_worker(env, name="refused", data_dir=data_dir)
    assert refused.process is not None
    assert refused.process.wait(timeout=120) == EXIT_STALE_STATE, refused.log_tail()
    lines = [line for line in refused.log_tail(400).splitlines() if "streamapp worker:" in line]
    assert len(lines) == 1, refused.log_tail()
    assert f"ahead of changelog {changelog} partition" in lines[0]
    assert "REBUILD_STALE_STATE=true streamapp worker" in lines[0]
    assert "ConsistencyError" not in refused.log_tail(400)

    rebuilt = start_worker(
        {**env, "REBUILD_STALE_STATE": "true"}, name="rebuilt", data_dir=data_dir
    )
    rebuilt.wait_ready(timeout=120)
    assert "event=stale_table_state_rebuilt" in rebuilt.log_tail(400)
    send(env, pairs[8 * 30 :])
    assert len(windows(read_features(env, len(before) + 1))) > len(before)
    assert rebuilt.alive()


def windows(values: list[bytes]) -> set[tuple[str, str]]:
    return {(json.loads(v)["asset_id"], json.loads(v)["window"]["end"]) for v in values}
