"""What the Tansu fallback broker gets wrong, and what streamapp does about it: one list.

Everything else in `streamapp/runtime/` is correct on any Kafka broker. These are the
workarounds that exist because of Tansu, each with what it costs and whether it runs
on Apache Kafka. `quirks_for(settings)` says which a worker turns on: the broker kind is
STREAMAPP_BROKER, which `dev up` writes into .streamapp/dev.env (`tansu` when it
fell back); users' own brokers are Apache Kafka or compatible, the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamapp.settings import Settings


@dataclass(frozen=True, slots=True)
class Workaround:
    name: str
    defect: str  # what Tansu does
    remedy: str  # what streamapp does instead, and where
    on_kafka: str  # whether it runs on Apache Kafka, and why


WORKAROUNDS: tuple[Workaround, ...] = (
    Workaround(
        "fetch_high_watermarks",
        "ListOffsets(latest) answers the base offset of the last batch + 1, short of the "
        "end whenever that batch holds several records; table recovery would stop early.",
        "Table recovery takes each changelog's end from a Fetch response's high watermark "
        "(`runtime.offsets.fetch_bounds`, used by `runtime.consumer.TunedConsumerThread`).",
        "Not used: Faust's ListOffsets(latest), which Apache Kafka answers right. The "
        "archive audit (`runtime.offsets.partition_bounds`) reads Fetch bounds on every "
        "broker: one code path that is right on both, used once per audit.",
    ),
    Workaround(
        "local_assignment_epochs",
        "JoinGroup hands out the same generation for different assignments, so Faust's "
        "stale-message fences (which compare generations) let stale messages pass.",
        "The app's generation is the process's own count of assignments "
        "(`runtime.consumer.EpochRebalanceListener`).",
        "Not used: Apache Kafka gives every rebalance a new generation, which Faust uses as it is.",
    ),
    Workaround(
        "reread_offset_jumps",
        "Exposed on Tansu first: a fetch from before a seek delivers offsets past the new "
        "position, which Faust would take for a gap and commit over.",
        "An offset jump is fetched again once before it counts as a gap "
        "(`runtime.drain.BatchedDrainConsumer._deliver`).",
        "Used: the stale fetch is Faust's own race between resuming the flow and seeking "
        "(faust-streaming#221), on any broker. Cost: one extra fetch per real gap, and "
        "streamapp's topics have none (no transactions, no compaction of inputs).",
    ),
)


@dataclass(frozen=True, slots=True)
class BrokerQuirks:
    """Which workarounds a worker runs (see `WORKAROUNDS`)."""

    fetch_high_watermarks: bool
    local_assignment_epochs: bool
    reread_offset_jumps: bool = True


def quirks_for(settings: Settings) -> BrokerQuirks:
    tansu = settings.streamapp_broker == "tansu"
    return BrokerQuirks(fetch_high_watermarks=tansu, local_assignment_epochs=tansu)
