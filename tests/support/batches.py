"""Batches without a broker: fake messages, an in-memory table, and checkpoint effects that
record every call in order (for tests of the checkpoint and of the batched agents)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

import faust
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage

from streamapp.contracts.deadletter import DeadLetter
from streamapp.runtime.checkpoint import Checkpoint, Headers, Records


def message(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    headers: Headers | None = None,
    timestamp: float = 1_795_320_000.0,
    generation: int = 1,
) -> ConsumerMessage:
    """A consumed message as a batch route delivers it (one reference: one reader)."""
    found = ConsumerMessage(
        topic,
        partition,
        offset,
        timestamp,
        0,
        headers,
        key,
        value,
        None,
        tp=TP(topic, partition),
        generation_id=generation,
    )
    found.incref()
    return found


def offline_app(name: str = "batches-test") -> faust.App:
    """An app whose topics can be built and named; it never connects."""
    return faust.App(name, broker="kafka://127.0.0.1:1", store="memory://")


class MemoryTable:
    """A table's partitions in memory, read as `streamapp.runtime.tables` reads a Faust table
    (`get` under the current message, `data._db_for_partition(p).items()`); `RecordingEffects`
    writes and deletes in it."""

    def __init__(self, name: str = "table") -> None:
        self.name = name
        self.partitions: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        self.data = self

    def get(self, key: bytes) -> bytes | None:
        for stored in self.partitions.values():
            if key in stored:
                return stored[key]
        return None

    def _db_for_partition(self, partition: int) -> dict[bytes, bytes]:
        return self.partitions[partition]


def _name(topic: faust.TopicT) -> str:
    return topic.get_topic_name()


class RecordingEffects:
    """Checkpoint effects that record each call in `log`, in order, as tuples.

    `rebalance_at`: the name of the call after which the consumer generation moves on
    (a rebalance); `fail_at`: the name of the call that raises instead.
    """

    def __init__(self, rebalance_at: str | None = None, fail_at: str | None = None) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.generation_id = 1
        self.rebalance_at = rebalance_at
        self.fail_at = fail_at

    def _record(self, *entry: Any) -> None:
        if entry[0] == self.fail_at:
            raise RuntimeError(f"{entry[0]} failed")
        self.log.append(entry)
        if entry[0] == self.rebalance_at:
            self.generation_id += 1

    def names(self) -> list[str]:
        """The kinds of call, in order."""
        return [entry[0] for entry in self.log]

    def checkpoint(self, messages: list[Message]) -> Checkpoint:
        """A checkpoint of a batch taken now."""
        return Checkpoint(self, messages, self.generation_id)

    def generation(self) -> int:
        return self.generation_id

    async def send(
        self,
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        headers: Headers | None,
    ) -> Awaitable[object]:
        self._record("send", _name(topic), key, value, partition, headers)

        async def delivery() -> None:
            self._record("delivered", _name(topic), key)

        return delivery()

    async def dead_letter(self, topic: faust.TopicT, letter: DeadLetter) -> None:
        self._record("dead_letter", _name(topic), letter)

    async def flush(self) -> None:
        self._record("flush")

    async def send_all(self, topic: str, records: Records) -> None:
        self._record("send_all", topic, list(records))

    async def write(self, table: MemoryTable, writes: dict[bytes, tuple[bytes, Message]]) -> None:
        self._record("write", table.name, {key: value for key, (value, _) in writes.items()})
        for key, (value, one) in writes.items():
            table.partitions[one.partition][key] = value

    async def delete(self, table: MemoryTable, deletions: dict[bytes, Message]) -> None:
        self._record("delete", table.name, sorted(deletions))
        for key, one in deletions.items():
            table.partitions[one.partition].pop(key, None)

    def ack(self, messages: list[Message]) -> None:
        self._record("ack", [(m.topic, m.partition, m.offset) for m in messages])

    def untrack(self, messages: list[Message]) -> None:
        self._record("untrack", [(m.topic, m.partition, m.offset) for m in messages])

    def entries(self, name: str) -> list[tuple[Any, ...]]:
        """The recorded calls of one kind."""
        return [entry for entry in self.log if entry[0] == name]
