"""The battery agent: EV telemetry -> `charge-sessions` and `battery-health`, exactly once.

Thin on purpose: sessions, health and end of life live in `tracker`, `sessions` and
`health`; this module moves bytes. It reads `telemetry` (Tesla records arrive there
normalised by `ingest-tesla`) and the feature agent's repartition topic, on a batch
route, and keeps the records of class `ev` (ASSET_CLASSES). A record on its VIN's home
partition is applied directly; a misrouted one is skipped, because the feature agent
forwards it to the home partition through the repartition topic, whose copy (with its
origin offset) is applied instead. Each VIN's state (`tracker.VinState`, a RocksDB
table) carries the offsets it has applied per source, so a redelivered record is
skipped; outputs go through the batch's checkpoint: sessions, weeks and dead letters
first, then the states, then the acks (`streamapp.runtime.checkpoint`).
"""

from __future__ import annotations

import logging

import faust
from faust.types import TP, Message

from streamapp.assets.classes import AssetClasses
from streamapp.battery import metrics
from streamapp.battery.readings import read
from streamapp.battery.rules import BatteryRules
from streamapp.battery.tracker import VinState, apply
from streamapp.contracts.codec import Invalid
from streamapp.contracts.telemetry import Telemetry, validate_telemetry
from streamapp.features.agent import (
    ORIGIN_OFFSET,
    ORIGIN_PARTITION,
    origin_dead_letter,
    repartition_topic_name,
)
from streamapp.runtime import drain, signals, tables
from streamapp.runtime.batching import batch_agent
from streamapp.runtime.checkpoint import Checkpoint
from streamapp.runtime.produce import HomePartitions
from streamapp.runtime.raw import raw_topic
from streamapp.runtime.tables import Table
from streamapp.settings import Settings
from streamapp.state.cache import StateCache

logger = logging.getLogger(__name__)

TABLE_NAME = "battery-state"
EV_CLASS = "ev"
DIRECT = -1  # the source of records read on their home partition
_CACHED_VINS = 20_000


class BatteryAgent:
    """Applies the batches of the `battery` agent to the battery table (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        rules: BatteryRules,
        classes: AssetClasses,
        table: Table,
        sessions: faust.TopicT,
        health: faust.TopicT,
        dlq: faust.TopicT,
    ) -> None:
        self.rules = rules
        self.classes = classes
        self.table = table
        self.sessions = sessions
        self.health = health
        self.dlq = dlq
        self.telemetry_topic = settings.topic_telemetry
        self.repartition_name = repartition_topic_name(settings)
        self.homes = HomePartitions(settings.topic_partitions)
        self.max_bytes = settings.max_payload_bytes
        self.cache: StateCache[VinState] = StateCache(_CACHED_VINS)
        self.latest_soh: dict[str, float] = {}

    def forget(self) -> None:
        """Drop the cached states (a failed batch may have changed them)."""
        self.cache.clear()

    async def on_revoked(self, revoked: set[TP]) -> None:
        self.cache.clear()
        self.latest_soh.clear()

    async def on_assigned(self, assigned: set[TP]) -> None:
        self.cache.clear()

    async def handle(self, messages: list[Message], checkpoint: Checkpoint) -> None:
        """Apply each EV record to its VIN's state in order, publish what it closed,
        dead-letter what it refused, and write the states (module docstring)."""
        by_vin: dict[str, list[tuple[int, int, Telemetry, Message]]] = {}
        for message in messages:
            found = self._decode(message)
            if found is not None:
                source, offset, telemetry = found
                by_vin.setdefault(telemetry.asset_id, []).append(
                    (source, offset, telemetry, message)
                )
        threshold = self.rules.health.eol_soh
        for vin, records in by_vin.items():
            anchor = records[-1][3]
            state = self._load(vin, anchor)
            for source, offset, telemetry, message in records:
                if offset <= state.offsets.get(source, -1):
                    metrics.RECORDS.labels("replayed").inc()
                    continue
                state.offsets[source] = offset
                reading = read(telemetry)
                if isinstance(reading, Invalid):
                    await self._refuse(checkpoint, message, reading.reason)
                    continue
                outcome = apply(vin, state, reading, self.rules)
                if outcome.refused is not None:
                    await self._refuse(checkpoint, message, outcome.refused)
                else:
                    metrics.RECORDS.labels("applied").inc()
                for session in outcome.sessions:
                    await checkpoint.send(self.sessions, vin.encode(), session.to_bytes())
                    metrics.SESSIONS.labels(session.kind, str(session.usable).lower()).inc()
                for week in outcome.weeks:
                    await checkpoint.send(self.health, vin.encode(), week.to_bytes())
                    metrics.WEEKS.inc()
                    if week.soh is not None:
                        metrics.SOH.observe(week.soh)
                        self.latest_soh[vin] = week.soh
            self.cache.put(vin, state)
            checkpoint.write(self.table, vin.encode(), state.to_bytes(), anchor)
        metrics.VINS_UNDER_THRESHOLD.set(sum(soh <= threshold for soh in self.latest_soh.values()))

    async def _refuse(self, checkpoint: Checkpoint, message: Message, reason: str) -> None:
        metrics.RECORDS.labels("refused").inc()
        await checkpoint.dead_letter(self.dlq, origin_dead_letter(message, f"battery: {reason}"))

    def _load(self, vin: str, message: Message) -> VinState:
        state = self.cache.get(vin)
        if state is None:
            stored = tables.read(self.table, vin.encode(), message)
            state = VinState.from_bytes(stored) if stored is not None else VinState()
        return state

    def _decode(self, message: Message) -> tuple[int, int, Telemetry] | None:
        """(source, offset, record) of an EV record this worker applies, else None."""
        telemetry = validate_telemetry(message.value, message.key, self.max_bytes)
        if isinstance(telemetry, Invalid):
            return None  # the ingest agent dead-letters it
        if message.topic == self.repartition_name:
            headers = dict(message.headers or ())
            source, offset = int(headers[ORIGIN_PARTITION]), int(headers[ORIGIN_OFFSET])
        else:
            key = telemetry.asset_id.encode()
            if message.key != key or message.partition != self.homes.of(key):
                return None  # misrouted: its repartitioned copy comes
            source, offset = DIRECT, message.offset
        origin = telemetry.metadata.get("source_topic")
        asset_class = self.classes.classify(
            telemetry.asset_id,
            telemetry.metadata,
            origin if isinstance(origin, str) else self.telemetry_topic,
            telemetry.signals,
            telemetry.cycle is not None,
        )
        return (source, offset, telemetry) if asset_class == EV_CLASS else None


def register(app: faust.App, settings: Settings) -> BatteryAgent:
    """Attach the battery agent, its table and topics to `app` (after the feature agent,
    whose repartition topic it reads)."""
    rules = BatteryRules.load(settings.battery_config, settings.battery_eol_soh)
    classes = AssetClasses.load(settings.asset_classes)
    batch_route = drain.route(app, (settings.topic_telemetry, repartition_topic_name(settings)))
    table = app.Table(
        TABLE_NAME,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help="Per-VIN battery state: open charge session, weekly health, applied offsets.",
    )
    agent = BatteryAgent(
        settings,
        rules,
        classes,
        table,
        raw_topic(app, settings.topic_charge_sessions),
        raw_topic(app, settings.topic_battery_health),
        raw_topic(app, settings.dlq_topic(settings.topic_telemetry)),
    )
    signals.on_partitions_revoked(app, agent.on_revoked)
    signals.on_partitions_assigned(app, agent.on_assigned)
    logger.info("event=battery_rules version=%s vehicles=%d", rules.version, len(rules.vehicles))

    batch_agent(
        app,
        "battery",
        batch_route,
        agent,
        settings.feature_batch_size,
        settings.feature_batch_within_s,
        help="Charge sessions and weekly SoH per VIN, exactly once in effect (module docstring).",
        partitions=settings.topic_partitions,
        internal=True,
    )
    return agent
