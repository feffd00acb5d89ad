"""One batch's effects, committed in the one order that makes a batched agent exactly once
in effect on an at-least-once broker (no transactions).

A batched agent (`streamapp.runtime.batching.run_batches`) hands every effect of a batch
to the batch's `Checkpoint`, which commits them in this order, each stage awaited before
the next:

1. **Sends not recorded in state** (emissions of closed windows, repartition forwards,
   dead letters): handed to the producer as the agent makes them, then waited for until
   the brokers hold them. The state written next forgets how to reproduce them (a window
   closed, an offset applied), so they reach Kafka first.
2. **State**: the table writes, then the deletes, each key in the partition of its
   message, each with its changelog record, acknowledged (`streamapp.runtime.tables`).
   Not if a rebalance happened since the batch was taken: its messages come again, maybe
   to another worker, so the checkpoint drops the rest (no state, no stage 3, no acks).
3. **Sends recorded in state** (predictions stored in their asset's state, re-sends of
   stored ones): after the state that holds their exact bytes, one record batch per
   partition (`streamapp.runtime.produce.send_all`).
4. **Acks** of the batch's input messages, once all of that is done, and only if no
   rebalance happened since the batch was taken; otherwise they are untracked (they
   come again).

Why that is exactly once in effect: Faust commits an offset only once its message is
acked (stage 4), so a crash or an exception at any point replays the batch from the
committed offsets. Every piece of state records the offsets it applied. A replay that
finds a piece of state not written yet redoes its records and sends the same stage-1
bytes again (the agents are deterministic; consumers de-duplicate by key); one that
finds it written skips its records, whose stage-1 outputs are on the topic already, and
sends the stage-3 bytes stored with it again. So every effect on state happens once and
no output is lost: at least once on the topics, every copy identical.

`flush` runs stages 1-3 for what was collected so far, so that an agent bounds what it
holds (the feature agent flushes each chunk of assets, then its partition clocks after
the asset states, then its deletions); `commit` is the last flush and stage 4. The batch
driver creates the checkpoint, hands it to the agent and commits it; on an exception it
acks nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Protocol

import faust
from faust.types import Message

from streamapp.contracts.deadletter import DeadLetter
from streamapp.runtime import drain, tables
from streamapp.runtime.produce import send_all
from streamapp.runtime.raw import send_dead_letter
from streamapp.runtime.tables import Table

Headers = list[tuple[str, bytes]]
Records = list[tuple[bytes | None, bytes, int | None]]


class Effects(Protocol):
    """What a checkpoint commits through: `AppEffects` in a worker, recording fakes in tests."""

    def generation(self) -> int:
        """The consumer generation now (a rebalance starts a new one)."""
        ...

    async def send(
        self,
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        headers: Headers | None,
    ) -> Awaitable[object]:
        """Hand one record to the producer; returns its delivery."""
        ...

    async def dead_letter(self, topic: faust.TopicT, letter: DeadLetter) -> None:
        """Hand one dead letter to the producer (delivered by `flush`)."""
        ...

    async def flush(self) -> None:
        """Wait until the brokers hold everything handed to the producer."""
        ...

    async def send_all(self, topic: str, records: Records) -> None:
        """Send records in bulk and wait until the brokers hold them."""
        ...

    async def write(self, table: Table, writes: dict[bytes, tuple[bytes, Message]]) -> None:
        """Store values with their changelog records, acknowledged."""
        ...

    async def delete(self, table: Table, deletions: dict[bytes, Message]) -> None:
        """Delete keys with their tombstones, acknowledged."""
        ...

    def ack(self, messages: list[Message]) -> None:
        """Ack input messages: their offsets may be committed."""
        ...

    def untrack(self, messages: list[Message]) -> None:
        """Forget input messages left unacked (they come again after the rebalance)."""
        ...


class AppEffects:
    """The effects of a Faust app: its producer, its tables, its consumer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def generation(self) -> int:
        return self.app.consumer_generation_id

    async def send(
        self,
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        headers: Headers | None,
    ) -> Awaitable[object]:
        # One Faust send: its sensors count it, and it takes a record of any size the
        # producer allows (send_all's batches are smaller).
        return await topic.send(key=key, value=value, partition=partition, headers=headers)

    async def dead_letter(self, topic: faust.TopicT, letter: DeadLetter) -> None:
        await send_dead_letter(topic, letter)

    async def flush(self) -> None:
        await self.app.producer.flush()

    async def send_all(self, topic: str, records: Records) -> None:
        await send_all(self.app, topic, records)

    async def write(self, table: Table, writes: dict[bytes, tuple[bytes, Message]]) -> None:
        await tables.write(table, writes)

    async def delete(self, table: Table, deletions: dict[bytes, Message]) -> None:
        await tables.delete(table, deletions)

    def ack(self, messages: list[Message]) -> None:
        drain.ack_all(self.app.consumer, messages)

    def untrack(self, messages: list[Message]) -> None:
        drain.untrack(self.app.consumer, messages)


class Checkpoint:
    """The effects of one batch of `messages`, taken in consumer generation `generation`,
    committed in the order of the module docstring."""

    def __init__(self, effects: Effects, messages: list[Message], generation: int) -> None:
        self.effects = effects
        self.messages = messages
        self.generation = generation
        self._deliveries: list[Awaitable[object]] = []
        self._letters = False  # dead letters handed to the producer since the last flush
        self._writes: dict[Table, dict[bytes, tuple[bytes, Message]]] = {}
        self._deletes: dict[Table, dict[bytes, Message]] = {}
        self._after_state: dict[str, Records] = {}

    @property
    def current(self) -> bool:
        """No rebalance happened since the batch was taken."""
        return self.effects.generation() == self.generation

    async def send(
        self,
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Stage 1: a record the state does not remember, to the producer now."""
        self._deliveries.append(await self.effects.send(topic, key, value, partition, headers))

    async def dead_letter(self, topic: faust.TopicT, letter: DeadLetter) -> None:
        """Stage 1: a dead letter, to the producer now."""
        await self.effects.dead_letter(topic, letter)
        self._letters = True

    async def refuse(self, topic: faust.TopicT, message: Message, reason: str) -> None:
        """Stage 1: the dead letter of an input message, under its own key and coordinates."""
        await self.dead_letter(topic, DeadLetter.from_message(message, reason))

    def write(self, table: Table, key: bytes, value: bytes, message: Message) -> None:
        """Stage 2: store `value` under `key` in the partition of `message`."""
        self._writes.setdefault(table, {})[key] = (value, message)

    def delete(self, table: Table, key: bytes, message: Message) -> None:
        """Stage 2, after the writes: delete `key` from the partition of `message`."""
        self._deletes.setdefault(table, {})[key] = message

    def send_after_state(
        self, topic: str, records: Iterable[tuple[bytes | None, bytes, int | None]]
    ) -> None:
        """Stage 3: `(key, value, partition or None)` records whose bytes the state holds."""
        self._after_state.setdefault(topic, []).extend(records)

    async def delivered(self) -> None:
        """Stage 1 alone: wait until the brokers hold the sends made so far (every flush
        starts with it; an agent that times its deliveries calls it first)."""
        deliveries, self._deliveries = self._deliveries, []
        if deliveries:
            await asyncio.gather(*deliveries)
        if self._letters:
            self._letters = False
            await self.effects.flush()

    async def flush(self) -> bool:
        """Stages 1-3 for what was collected so far. False if a rebalance was found before
        stage 2: nothing more was done, and the batch is to be dropped (it comes again)."""
        await self.delivered()
        writes, deletes, after_state = self._writes, self._deletes, self._after_state
        self._writes, self._deletes, self._after_state = {}, {}, {}
        if not self.current:
            return False
        for table, stored in writes.items():
            await self.effects.write(table, stored)
        for table, deleted in deletes.items():
            await self.effects.delete(table, deleted)
        for topic, records in after_state.items():
            if records:
                await self.effects.send_all(topic, records)
        return True

    async def commit(self) -> None:
        """The last flush, then stage 4: ack the batch, or untrack it after a rebalance."""
        if await self.flush() and self.current:
            self.effects.ack(self.messages)
        else:
            self.effects.untrack(self.messages)
