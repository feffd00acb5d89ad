"""A Faust consumer whose fetch loop waits once per fetched batch instead of per message.

faust-streaming's `Consumer._drain_messages` races every single message's delivery
against `suspend_flow` with `Service.wait_first`, which creates four tasks and runs
`asyncio.wait` per message: a profile of a bare agent showed that loop, not Kafka, as
the ceiling (about 5,000 msgs/s here). While the flow runs, this subclass races a
whole fetched batch against `suspend_flow` once (a rebalance still interrupts
delivery at once); while the flow is suspended (rebalance, table recovery) it
delivers exactly as upstream, one race per message. Gaps, `broker_commit_every` and
read offsets are handled as upstream, message by message. Installed by `install(app)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING

_YIELD_EVERY = 100


class BatchedDrainMixin:
    """Overrides `_drain_messages` of a Faust consumer class (see module docstring)."""

    async def _deliver(self: Any, records: AsyncIterator[tuple[Any, Any]], race_each: bool) -> None:
        callback = self.callback
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        since_yield = 0
        try:
            async for tp, message in records:
                since_yield += 1
                if since_yield > _YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                read_offset = get_read_offset(tp)
                if read_offset is not None and offset < read_offset:
                    continue
                if read_offset and offset - read_offset > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, read_offset + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                if race_each:
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                else:
                    await callback(message)
                set_read_offset(tp, offset)
        finally:
            await records.aclose()

    async def _drain_messages(self: Any, fetcher: Any) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    if self.suspend_flow.is_set():
                        await self._deliver(records, race_each=True)
                    else:
                        await self.wait_first(
                            self._deliver(records, race_each=False), self.suspend_flow.wait()
                        )
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


def install(app: faust.App) -> None:
    """Make `app` create its consumer from the batched-drain subclass (idempotent)."""
    transport = app.transport
    base = transport.Consumer
    if issubclass(base, BatchedDrainMixin):
        return
    transport.Consumer = type(f"BatchedDrain{base.__name__}", (BatchedDrainMixin, base), {})
