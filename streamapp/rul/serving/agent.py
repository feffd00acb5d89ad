"""Streaming RUL: extracted-features -> per-asset sequences -> batched ensemble -> predictions.

Its topic is a batch route of `streamapp.runtime.drain`: the fetch loop hands it lists of
raw messages, past Faust's per-message delivery. Per batch (up to `rul_batch_size`
messages, or what arrived `rul_batch_timeout_ms` after the first) the agent validates
each record, applies it to its asset's sequence, runs every model once over the whole
batch (in worker threads, so the event loop keeps fetching meanwhile), writes each
touched asset's state once, with the predictions it is about to send, then sends one
prediction per applied record and waits until the broker holds them (see `sequences.py`
for why that order), and acks the batch (`streamapp.runtime.batching`).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import faust
import numpy as np
import torch
from faust.types import Message

from streamapp.contracts.codec import Invalid
from streamapp.contracts.features import FeatureRecord, parse_feature_record
from streamapp.contracts.predictions import prediction_record
from streamapp.rul.serving import metrics
from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.serving.live_model import LiveModel
from streamapp.rul.serving.sequences import AssetSequence, Outcome, apply, missing_features
from streamapp.runtime import drain, tables
from streamapp.runtime.batching import Finish, run_batches
from streamapp.runtime.produce import send_all
from streamapp.runtime.raw import dead_letter_message, raw_topic
from streamapp.settings import Settings
from streamapp.state.cache import StateCache

TABLE_NAME = "rul-sequences"
MODEL_CHECK_INTERVAL_S = 2.0


def register(app: faust.App, settings: Settings) -> LiveModel:
    """Attach the RUL agent, its table and model following to `app`; returns the live model."""
    torch.set_num_threads(settings.torch_threads)
    members = settings.rul_inference_threads
    pool = ThreadPoolExecutor(members, "rul-member") if members > 1 else None
    batch_route = drain.route(app, (settings.topic_features,))
    features_topic = drain.routed_topic(app, batch_route)
    features_dlq = raw_topic(app, settings.dlq_topic(settings.topic_features))
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
    sequences.key_serializer = sequences.value_serializer = "raw"
    live = LiveModel(settings.models_dir)
    # Decoded states of this worker's assets, each tagged with the consumer generation that
    # read it: the table (and its changelog) stays the truth, the cache only saves decoding
    # it every batch, and a batch of a new generation (after a rebalance) never sees states
    # that a batch of the old one changed but never wrote. A batch pins the assets it
    # touches until its `finish` wrote them (see `prepare_batch`).
    cache: StateCache[tuple[int, AssetSequence]] = StateCache(settings.rul_state_cache_assets)

    @app.on_partitions_revoked.connect
    async def _forget_on_revoke(app: faust.App, revoked: object, **kwargs: object) -> None:
        cache.clear()

    @app.on_partitions_assigned.connect
    async def _forget_on_assign(app: faust.App, assigned: object, **kwargs: object) -> None:
        cache.clear()

    @app.timer(MODEL_CHECK_INTERVAL_S)
    async def follow_active_model() -> None:
        """Pick up `streamapp models activate` without a restart."""
        await live.refresh()
        live.warn_if_missing()

    @app.agent(features_topic, name="rul-predict")
    async def predict(stream: faust.StreamT) -> None:
        """One inference per batch; one prediction (or dead letter) per message.

        The stream subscribes the topic; its messages arrive on the batch route. The
        first batch waits for the active model: taken without it, its records would be
        applied without predictions.
        """
        await live.refresh()
        await run_batches(
            app,
            batch_route.queue,
            settings.rul_batch_size,
            settings.rul_batch_timeout_ms / 1000.0,
            prepare_batch,
            cache.clear,
        )

    def state_of(asset_id: str, message: Message, generation: int) -> AssetSequence:
        cached = cache.get(asset_id)
        if cached is not None and cached[0] == generation:
            return cached[1]
        state = AssetSequence.from_bytes(tables.read(sequences, asset_id.encode(), message))
        cache.put(asset_id, (generation, state))
        return state

    async def prepare_batch(messages: list[Message]) -> Finish:
        """Validate and apply the batch to the cached states; the rest runs in `finish`.

        The next batch is prepared while this one's models run (`run_batches`), so each
        touched asset's state is captured here, as this batch leaves it. The touched
        assets stay pinned in the cache until `finish` wrote them: evicted earlier, the
        next batch (or a later record of this one) would read the table's older state.
        """
        generation = messages[0].generation_id
        ensemble = live.ensemble
        needed = ensemble.feature_names if ensemble else None
        capacity = ensemble.window if ensemble else settings.rul_sequence_length
        touched: dict[str, tuple[Message, AssetSequence]] = {}  # its last message, state
        pin = cache.pin(touched.keys())
        pending: list[tuple[FeatureRecord, Message, np.ndarray, int]] = []
        resend: list[tuple[bytes | None, bytes, None]] = []
        dead = False
        for message in messages:
            record = parse_feature_record(message.value, settings.max_payload_bytes)
            if isinstance(record, Invalid):
                await dead_letter_message(features_dlq, message, record.reason)
                dead = True
                continue
            if needed is not None and (missing := missing_features(record, needed)):
                reason = f"missing features: {', '.join(missing)}"
                await dead_letter_message(features_dlq, message, reason)
                dead = True
                continue
            state = state_of(record.asset_id, message, generation)
            outcome = apply(state, record, message.offset, needed, capacity)
            if outcome == Outcome.REPLAYED:
                metrics.SKIPPED.labels(outcome).inc()
                if (stored := state.emission(message.offset)) is not None:
                    resend.append((record.asset_id.encode(), stored, None))
                continue
            state.emitted = []  # those of an earlier batch, on the topic by now
            touched[record.asset_id] = (message, state)
            if outcome != Outcome.APPLIED:
                metrics.SKIPPED.labels(outcome).inc()
            elif ensemble is None:
                metrics.SKIPPED.labels("no_model").inc()
                live.warn_if_missing()
            else:
                window = ensemble.window_from_rows(state.rows)
                pending.append((record, message, window, len(state.rows)))
        states = {asset: state.snapshot() for asset, (_, state) in touched.items()}

        async def finish() -> None:
            """Predict, store each asset's state with its predictions, then send them."""
            try:
                predictions: list[tuple[bytes, bytes, None]] = []
                if pending and ensemble:
                    predictions = await infer(ensemble, pending, states)
                if app.consumer_generation_id != generation:
                    return  # rebalanced meanwhile: these messages come again, maybe elsewhere
                await tables.write(
                    sequences,
                    {
                        asset.encode(): (states[asset].to_bytes(), message)
                        for asset, (message, _) in touched.items()
                    },
                )
            finally:
                cache.unpin(pin)
            if predictions or resend:
                await send_all(app, settings.topic_predictions, [*resend, *predictions])
                metrics.PREDICTIONS.inc(len(predictions))
            if dead:
                await app.producer.flush()

        return finish

    async def infer(
        ensemble: Ensemble,
        pending: list[tuple[FeatureRecord, Message, np.ndarray, int]],
        states: dict[str, AssetSequence],
    ) -> list[tuple[bytes, bytes, None]]:
        """Predict the batch; each prediction's bytes are also stored in its asset's state."""
        started = time.perf_counter()
        batch = np.stack([window for _, _, window, _ in pending])
        result = await asyncio.to_thread(ensemble.predict, batch, None, pool)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(pending))
        now_ms = time.time() * 1000.0
        predictions = []
        for index, (record, message, _, history) in enumerate(pending):
            row = result.row(index)
            value = prediction_record(
                record,
                row,
                ensemble.version,
                history,
                ensemble.window,
                ensemble.feature_names,
                now_ms - message.timestamp * 1000.0,
            )
            states[record.asset_id].emitted.append((message.offset, value))
            predictions.append((record.asset_id.encode(), value, None))
            metrics.PREDICTED_RUL.observe(row["rul_prediction"])
            metrics.INTERVAL_WIDTH.observe(
                row["confidence_interval_upper"] - row["confidence_interval_lower"]
            )
        return predictions

    return live
