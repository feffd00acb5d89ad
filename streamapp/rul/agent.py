"""Streaming RUL: extracted-features -> per-asset sequences -> batched ensemble -> predictions."""

from __future__ import annotations

import time

import faust
import numpy as np

from streamapp.ingest.agent import dead_letter, raw_topic
from streamapp.ingest.validation import Invalid
from streamapp.kafka.events import make_current
from streamapp.rul import stream_metrics as metrics
from streamapp.rul.live_model import LiveModel
from streamapp.rul.sequences import (
    AssetSequence,
    FeatureRecord,
    Outcome,
    apply,
    missing_features,
    parse_feature_record,
    prediction_record,
    remember,
)
from streamapp.rul.serving import Ensemble
from streamapp.settings import Settings

MODEL_CHECK_INTERVAL_S = 2.0


def register(app: faust.App, settings: Settings) -> LiveModel:
    features_topic = raw_topic(app, settings.topic_features)
    features_dlq = raw_topic(app, settings.dlq_topic(settings.topic_features))
    predictions = raw_topic(app, settings.topic_predictions)
    sequences = app.Table(
        "rul-sequences",
        default=None,
        partitions=settings.topic_partitions,
        schema=faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
    )
    # Faust still picks its json codec for a bytes schema; the value is our own JSON bytes.
    sequences.key_serializer = sequences.value_serializer = "raw"
    live = LiveModel(settings.models_dir)

    @app.task
    async def load_model_at_start() -> None:
        await live.refresh()

    @app.timer(MODEL_CHECK_INTERVAL_S)
    async def follow_active_model() -> None:
        """Pick up `streamapp models activate` without a restart."""
        await live.refresh()
        live.warn_if_missing()

    @app.agent(features_topic, name="rul-predict")
    async def predict(stream: faust.StreamT) -> None:
        """One inference per batch; one prediction (or dead letter) per event."""
        async for events in stream.take_events(
            settings.rul_batch_size, within=settings.rul_batch_timeout_ms / 1000.0
        ):
            await predict_batch(events)

    async def predict_batch(events: list[faust.EventT]) -> None:
        ensemble = live.ensemble
        needed = ensemble.feature_names if ensemble else None
        capacity = ensemble.window if ensemble else settings.rul_sequence_length
        states: dict[str, tuple[AssetSequence, faust.EventT]] = {}
        pending: list[tuple[FeatureRecord, AssetSequence, faust.EventT, list]] = []
        for event in events:
            message = event.message
            record = parse_feature_record(message.value, settings.max_payload_bytes)
            if isinstance(record, Invalid):
                await dead_letter(features_dlq, event, record.reason)
                continue
            if needed is not None and (missing := missing_features(record, needed)):
                await dead_letter(features_dlq, event, f"missing features: {', '.join(missing)}")
                continue
            make_current(event)
            if record.asset_id not in states:
                states[record.asset_id] = (
                    AssetSequence.from_bytes(sequences.get(record.asset_id.encode())),
                    event,
                )
            state = states[record.asset_id][0]
            states[record.asset_id] = (state, event)
            if message.offset in state.recent:
                await predictions.send(
                    key=record.asset_id.encode(), value=state.recent[message.offset].encode()
                )
                continue
            outcome = apply(state, record, message.offset, needed, capacity)
            if outcome != Outcome.APPLIED:
                metrics.SKIPPED.labels(outcome).inc()
            elif ensemble is None:
                metrics.SKIPPED.labels("no_model").inc()
                live.warn_if_missing()
            else:
                pending.append((record, state, event, list(state.rows)))
        if pending and ensemble is not None:
            await publish(ensemble, pending)
        for asset_id, (state, event) in states.items():
            make_current(event)
            sequences[asset_id.encode()] = state.to_bytes()

    async def publish(ensemble: Ensemble, pending: list) -> None:
        started = time.perf_counter()
        batch = [ensemble.build_window(rows) for _, _, _, rows in pending]
        result = ensemble.predict(np.stack(batch))
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(pending))
        for index, (record, state, event, rows) in enumerate(pending):
            row = result.row(index)
            latency_ms = time.time() * 1000.0 - event.message.timestamp * 1000.0
            text = prediction_record(
                record,
                row,
                ensemble.version,
                len(rows),
                ensemble.window,
                ensemble.feature_names,
                latency_ms,
            )
            remember(state, event.message.offset, text)
            await predictions.send(key=record.asset_id.encode(), value=text.encode())
            metrics.PREDICTIONS.inc()
            metrics.PREDICTED_RUL.observe(row["rul_prediction"])
            metrics.INTERVAL_WIDTH.observe(
                row["confidence_interval_upper"] - row["confidence_interval_lower"]
            )

    return live
