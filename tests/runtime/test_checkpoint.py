"""The checkpoint commits a batch's effects in the one documented order (no broker)."""

from __future__ import annotations

import asyncio

import pytest

from streamapp.contracts.deadletter import DeadLetter
from tests.support.batches import MemoryTable, RecordingEffects, message, offline_app

APP = offline_app("checkpoint-test")
OUTPUT = APP.topic("output")
DLQ = APP.topic("input.dlq")
BATCH = [message("input", 0, offset, b"k", b"v") for offset in range(3)]
LETTER = DeadLetter(b"k", b"v", "bad", "input", 0, 1, None)
ACKED = [("input", 0, offset) for offset in range(3)]


async def collect_all(effects: RecordingEffects, table: MemoryTable) -> None:
    """One of each effect, made in the reverse of their commit order, then committed."""
    checkpoint = effects.checkpoint(BATCH)
    checkpoint.send_after_state("predictions", [(b"a", b"p", None)])
    checkpoint.delete(table, b"gone", BATCH[0])
    checkpoint.write(table, b"a", b"state", BATCH[2])
    await checkpoint.dead_letter(DLQ, LETTER)
    await checkpoint.send(OUTPUT, b"a", b"window")
    await checkpoint.commit()


def test_a_commit_runs_the_stages_in_order() -> None:
    effects, table = RecordingEffects(), MemoryTable()
    table.partitions[0][b"gone"] = b"old"
    asyncio.run(collect_all(effects, table))
    assert effects.log == [
        ("dead_letter", "input.dlq", LETTER),
        ("send", "output", b"a", b"window", None, None),
        ("delivered", "output", b"a"),
        ("flush",),
        ("write", "table", {b"a": b"state"}),
        ("delete", "table", [b"gone"]),
        ("send_all", "predictions", [(b"a", b"p", None)]),
        ("ack", ACKED),
    ]
    assert table.partitions[0] == {b"a": b"state"}


def test_a_rebalance_before_the_state_drops_the_rest_and_acks_nothing() -> None:
    effects, table = RecordingEffects(rebalance_at="flush"), MemoryTable()
    asyncio.run(collect_all(effects, table))
    assert effects.names() == ["dead_letter", "send", "delivered", "flush", "untrack"]
    assert effects.log[-1] == ("untrack", ACKED)
    assert table.get(b"a") is None


def test_a_rebalance_after_the_state_untracks_instead_of_acking() -> None:
    effects = RecordingEffects(rebalance_at="send_all")
    asyncio.run(collect_all(effects, MemoryTable()))
    assert effects.names()[-3:] == ["delete", "send_all", "untrack"]


def test_flushes_keep_the_order_across_chunks() -> None:
    """Each flush commits stages 1-3 of what came since the last; the commit acks once."""
    effects, table = RecordingEffects(), MemoryTable()

    async def scenario() -> list[bool]:
        checkpoint = effects.checkpoint(BATCH)
        flushed = []
        for chunk in (b"1", b"2"):
            await checkpoint.send(OUTPUT, chunk, b"window")
            checkpoint.write(table, chunk, b"state", BATCH[0])
            flushed.append(await checkpoint.flush())
        checkpoint.write(table, b"clock", b"c", BATCH[0])
        checkpoint.delete(table, b"1", BATCH[0])
        flushed.append(await checkpoint.flush())
        await checkpoint.commit()
        return flushed

    assert asyncio.run(scenario()) == [True, True, True]
    assert [entry[:3] for entry in effects.log] == [
        ("send", "output", b"1"),
        ("delivered", "output", b"1"),
        ("write", "table", {b"1": b"state"}),
        ("send", "output", b"2"),
        ("delivered", "output", b"2"),
        ("write", "table", {b"2": b"state"}),
        ("write", "table", {b"clock": b"c"}),
        ("delete", "table", [b"1"]),
        ("ack", ACKED),
    ]
    assert table.partitions[0] == {b"2": b"state", b"clock": b"c"}


def test_a_flush_after_a_rebalance_says_so_and_writes_nothing() -> None:
    effects, table = RecordingEffects(), MemoryTable()

    async def scenario() -> tuple[bool, bool, bool]:
        checkpoint = effects.checkpoint(BATCH)
        checkpoint.write(table, b"a", b"state", BATCH[0])
        first = await checkpoint.flush()
        effects.generation_id += 1
        checkpoint.write(table, b"b", b"state", BATCH[0])
        return first, await checkpoint.flush(), checkpoint.current

    assert asyncio.run(scenario()) == (True, False, False)
    assert effects.names() == ["write"]
    assert table.get(b"b") is None


@pytest.mark.parametrize("failing", ["delivered", "flush", "write", "delete", "send_all"])
def test_an_exception_propagates_without_acks(failing: str) -> None:
    effects, table = RecordingEffects(fail_at=failing), MemoryTable()
    with pytest.raises(RuntimeError, match=f"{failing} failed"):
        asyncio.run(collect_all(effects, table))
    assert "ack" not in effects.names()
    assert "untrack" not in effects.names()
