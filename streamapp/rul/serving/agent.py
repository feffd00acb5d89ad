"""Streaming RUL: extracted-features -> per-sensor sequences -> each class's ensemble ->
predictions.

Its topic is a batch route of `streamapp.runtime.drain`: the fetch loop hands it lists of
raw messages, past Faust's per-message delivery. Per batch (up to `rul_batch_size`
messages, or what arrived `rul_batch_timeout_ms` after the first) `RulAgent` validates
each record and applies it to its asset's sequence; the batch's `finish` runs every
model once over the whole batch (in worker threads, so the event loop keeps fetching
and the next batch is prepared meanwhile) and hands the batch's checkpoint each touched
asset's state, with the predictions it is about to send, and those predictions, sent
after the state (`streamapp.runtime.checkpoint` has the order; `sequences.py` why a
replay then re-sends identical bytes).

Each record is served by the active model of its asset class (`metadata.asset_class`, as
the feature agent stamps it, else the class rules on its asset id and feature names); a
class with no model keeps its sequences and counts `no_model`. Only malformed records,
records missing their own class's model inputs, and records not keyed by their asset id
(their sequence would live on another partition than the asset's) are dead letters.
Each (asset, sensor) has its own sequence: records of several sensors of one asset are
all served, each from its own history.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, NamedTuple, cast

import faust
import numpy as np
import torch
from faust.types import TP, Message

from streamapp.assets.classes import AssetClasses
from streamapp.contracts.codec import Invalid
from streamapp.contracts.features import FeatureRecord, parse_feature_record
from streamapp.contracts.predictions import prediction_record
from streamapp.rul.serving import metrics
from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.serving.live_model import LiveModels
from streamapp.rul.serving.sequences import (
    AssetSequence,
    Outcome,
    apply,
    missing_features,
    sequence_key,
)
from streamapp.rul.training.remote import model_bucket
from streamapp.runtime import drain, signals, tables
from streamapp.runtime.batching import Finish, batch_agent
from streamapp.runtime.checkpoint import Checkpoint
from streamapp.runtime.raw import raw_topic
from streamapp.runtime.tables import Table
from streamapp.settings import Settings
from streamapp.state.cache import StateCache

TABLE_NAME = "rul-sequences"
MODEL_CHECK_INTERVAL_S = 2.0


class RulAgent:
    """Validates, sequences and predicts the batches of the `rul-predict` agent (module
    docstring).

    Collaborators: the live model, the sequence table, the dead-letter topic, the thread
    pool of the ensemble's members. It keeps the decoded states of its assets, each
    tagged with the consumer generation that read it: the table (and its changelog)
    stays the truth, the cache only saves decoding it every batch, and a batch of a new
    generation (after a rebalance) never sees states that a batch of the old one changed
    but never wrote. A batch pins the assets it touches until its `finish` wrote them.
    """

    def __init__(
        self,
        settings: Settings,
        live: LiveModels,
        table: Table,
        dlq: faust.TopicT,
        pool: Executor | None = None,
    ) -> None:
        self.live = live
        self.features_topic = settings.topic_features
        self.table = table
        self.dlq = dlq
        self.pool = pool
        self.predictions_topic = settings.topic_predictions
        self.max_bytes = settings.max_payload_bytes
        self.sequence_length = settings.rul_sequence_length
        self.cache: StateCache[tuple[int, AssetSequence]] = StateCache(
            settings.rul_state_cache_assets
        )

    def forget(self) -> None:
        """Drop the decoded states (a failed or abandoned batch may have changed them)."""
        self.cache.clear()

    async def on_rebalance(self, partitions: set[TP]) -> None:
        """Partitions revoked or assigned: the table's states are the truth again."""
        self.cache.clear()

    async def follow_model(self) -> None:
        """Pick up `streamapp models activate` without a restart."""
        await self.live.refresh()

    def _state_of(self, key: str, message: Message, generation: int) -> AssetSequence:
        cached = self.cache.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        state = AssetSequence.from_bytes(tables.read(self.table, key.encode(), message))
        self.cache.put(key, (generation, state))
        return state

    async def handle(self, messages: list[Message], checkpoint: Checkpoint) -> Finish:
        """Validate and apply the batch to the cached states; the rest runs in `finish`.

        The next batch is prepared while this one's models run (`run_batches`), so each
        touched asset's state is captured here, as this batch leaves it. The touched
        assets stay pinned in the cache until `finish` wrote them: evicted earlier, the
        next batch (or a later record of this one) would read the table's older state.
        """
        generation = checkpoint.generation
        ensembles = self.live.ensembles()
        cache = self.cache
        touched: dict[str, tuple[Message, AssetSequence]] = {}  # per sequence: last message
        pin = cache.pin(touched.keys())
        pending: dict[str, list[Pending]] = {}  # per class
        resend: list[tuple[bytes | None, bytes, None]] = []
        for message in messages:
            record = parse_feature_record(message.value, self.max_bytes)
            if isinstance(record, Invalid):
                await checkpoint.refuse(self.dlq, message, record.reason)
                continue
            if message.key != record.asset_id.encode():
                await checkpoint.refuse(self.dlq, message, unkeyed_reason(message.key))
                continue
            asset_class = self.live.class_of(record, self.features_topic)
            ensemble = ensembles.get(asset_class)
            needed = ensemble.feature_names if ensemble else None
            if needed is not None and (missing := missing_features(record, needed)):
                names = ", ".join(missing)
                reason = f"missing features: {names} (the {asset_class} model's inputs)"
                await checkpoint.refuse(self.dlq, message, reason)
                continue
            key = sequence_key(record)
            state = self._state_of(key, message, generation)
            capacity = ensemble.window if ensemble else self.sequence_length
            outcome = apply(state, record, message.offset, needed, capacity)
            if outcome == Outcome.REPLAYED:
                metrics.SKIPPED.labels(outcome, asset_class).inc()
                if (stored := state.emission(message.offset)) is not None:
                    resend.append((record.asset_id.encode(), stored, None))
                continue
            state.emitted = []  # those of an earlier batch, on the topic by now
            touched[key] = (message, state)
            if outcome != Outcome.APPLIED:
                metrics.SKIPPED.labels(outcome, asset_class).inc()
            elif ensemble is None:
                metrics.SKIPPED.labels("no_model", asset_class).inc()
                self.live[asset_class].warn_if_missing()
            else:
                window = ensemble.window_from_rows(state.rows)
                pending.setdefault(asset_class, []).append(
                    Pending(record, message, window, len(state.rows), key)
                )
        states = {key: state.snapshot() for key, (_, state) in touched.items()}

        async def finish() -> None:
            """Predict; flush each sequence's state with its predictions, then those."""
            try:
                predictions: list[tuple[bytes, bytes, None]] = []
                for asset_class, waiting in pending.items():
                    ensemble = ensembles[asset_class]
                    assert ensemble is not None  # only records with a model wait
                    predictions += await self._infer(ensemble, asset_class, waiting, states)
                for key, (message, _) in touched.items():
                    checkpoint.write(self.table, key.encode(), states[key].to_bytes(), message)
                checkpoint.send_after_state(self.predictions_topic, [*resend, *predictions])
                written = await checkpoint.flush()
            finally:
                cache.unpin(pin)
            if written:
                metrics.PREDICTIONS.inc(len(predictions))

        return finish

    async def _infer(
        self,
        ensemble: Ensemble,
        asset_class: str,
        pending: list[Pending],
        states: dict[str, AssetSequence],
    ) -> list[tuple[bytes, bytes, None]]:
        """Predict one class's records of the batch; each prediction's bytes are also
        stored in its sequence's state."""
        started = time.perf_counter()
        batch = np.stack([waiting.window for waiting in pending])
        result = await asyncio.to_thread(ensemble.predict, batch, None, self.pool)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(pending))
        now_ms = time.time() * 1000.0
        predictions = []
        for index, (record, message, _, history, key) in enumerate(pending):
            row = result.row(index)
            value = prediction_record(
                record,
                row,
                ensemble.version,
                history,
                ensemble.window,
                ensemble.feature_names,
                now_ms - message.timestamp * 1000.0,
                asset_class,
            )
            states[key].emitted.append((message.offset, value))
            predictions.append((record.asset_id.encode(), value, None))
            metrics.PREDICTED_RUL.observe(row["rul_prediction"])
            metrics.INTERVAL_WIDTH.observe(
                row["confidence_interval_upper"] - row["confidence_interval_lower"]
            )
        return predictions


class Pending(NamedTuple):
    """A record waiting for its class's model: its model window and sequence."""

    record: FeatureRecord
    message: Message
    window: np.ndarray
    history: int
    key: str


def unkeyed_reason(key: bytes | None) -> str:
    """Why a record not keyed by its asset id is refused, and how to send it."""
    got = "no key" if key is None else f"key {key[:64]!r}"
    return (
        f"{got}: extracted-features records must be keyed by their asset_id, so that an "
        "asset's sequence lives on one partition (kafka-console-producer: "
        "--property parse.key=true --property key.separator=:)"
    )


def register(app: faust.App, settings: Settings) -> LiveModels:
    """Attach the RUL agent, its table and model following to `app`; returns the models."""
    torch.set_num_threads(settings.torch_threads)
    members = settings.rul_inference_threads
    pool = ThreadPoolExecutor(members, "rul-member") if members > 1 else None
    batch_route = drain.route(app, (settings.topic_features,))
    dlq = raw_topic(app, settings.dlq_topic(settings.topic_features))
    raw_topic(app, settings.topic_predictions)  # declared, so the worker creates it
    sequences = app.Table(
        TABLE_NAME,
        default=None,
        partitions=settings.topic_partitions,
        # The changelog topic's codecs come from key_type/value_type, fixed when the
        # table is created: without them its recovery json-decodes these raw bytes.
        key_type=bytes,
        value_type=bytes,
        schema=faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
    )
    # Faust still picks its json codec for a bytes schema; the value is our own JSON bytes.
    cast(Any, sequences).key_serializer = cast(Any, sequences).value_serializer = "raw"
    classes = AssetClasses.load(settings.asset_classes)
    live = LiveModels(settings.models_dir, classes, model_bucket(settings))
    agent = RulAgent(settings, live, sequences, dlq, pool)
    signals.on_partitions_revoked(app, agent.on_rebalance)
    signals.on_partitions_assigned(app, agent.on_rebalance)
    app.timer(MODEL_CHECK_INTERVAL_S)(agent.follow_model)

    batch_agent(
        app,
        "rul-predict",
        batch_route,
        agent,
        settings.rul_batch_size,
        settings.rul_batch_timeout_ms / 1000.0,
        help="One inference per batch; one prediction (or dead letter) per message. The "
        "first batch waits for the active model: taken without it, its records would be "
        "applied without predictions.",
        before=live.refresh,
    )
    return live
