"""A stand-in for the consumer side of Faust's acks, for tests of pure ack logic."""

from __future__ import annotations

from faust.types.tuples import ConsumerMessage


class AckLog:
    """The consumer side of a final ack, as Faust's `Consumer.ack` (minus commit tracking).

    `_unacked_messages` is there for `streamapp.runtime.drain.untrack`.
    """

    def __init__(self) -> None:
        self.acked: list[int] = []
        self._unacked_messages: set[ConsumerMessage] = set()

    def ack(self, message: ConsumerMessage) -> bool:
        message.acked = True
        self.acked.append(message.offset)
        return True
