"""The fleet view behind the live page: the latest RUL prediction and recent history per asset.

Each worker reads the whole predictions topic itself, with a group-less consumer
(no commits, no rebalances, nobody disturbed). Its RUL agent only sees the assets
of its own partitions, so a store fed in-process would show a different fraction
of the fleet on every worker; reading the topic gives every worker's page the
whole fleet, including predictions published by other workers or by any upstream
service, and survives a worker restart by re-reading a bounded backlog.

`FleetView.record_prediction` is idempotent on (asset, timestamp, model version),
so feeding it from an agent as well as from the topic never double-counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamapp.contracts.codec import parse_ts
from streamapp.rul.serving.metrics import ASSETS_UNDER_THRESHOLD
from streamapp.runtime.clients import wait_for_partitions
from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings

logger = logging.getLogger(__name__)

RATE_WINDOW_S = 60.0


@dataclass(slots=True)
class AssetState:
    """What the page shows of one asset; history points are (ts_ms, rul, lower, upper, version)."""

    latest: dict[str, Any]
    latest_ts_ms: float
    history: deque[tuple[float, float, float | None, float | None, str]]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _scores(value: Any) -> dict[str, float]:
    """A record's per-member predictions, those that are finite numbers."""
    if not isinstance(value, dict):
        return {}
    numbers = {name: _number(score) for name, score in value.items()}
    return {name: score for name, score in numbers.items() if score is not None}


class FleetView:
    """Latest predictions of every asset, bounded in assets and in points per asset."""

    def __init__(self, history_points: int = 120, max_assets: int = 5000) -> None:
        self.history_points = history_points
        self.max_assets = max_assets
        self._assets: OrderedDict[str, AssetState] = OrderedDict()
        self._arrivals: deque[float] = deque()
        self.predictions_seen = 0
        self.rejected = 0

    def record_prediction(self, prediction: dict[str, Any], now: float | None = None) -> bool:
        """Add one `rul-predictions` record; False if malformed or already recorded."""
        asset_id = prediction.get("asset_id") if isinstance(prediction, dict) else None
        rul = _number(prediction.get("rul_prediction")) if isinstance(prediction, dict) else None
        ts_ms = parse_ts(prediction.get("timestamp")) if isinstance(prediction, dict) else None
        if not isinstance(asset_id, str) or not asset_id or rul is None:
            self.rejected += 1
            return False
        if not isinstance(ts_ms, float):
            self.rejected += 1
            return False
        lower = _number(prediction.get("confidence_interval_lower"))
        upper = _number(prediction.get("confidence_interval_upper"))
        version = str(prediction.get("model_version", ""))
        state = self._assets.get(asset_id)
        if state is None:
            state = AssetState(prediction, ts_ms, deque(maxlen=self.history_points))
            self._assets[asset_id] = state
            while len(self._assets) > self.max_assets:
                self._assets.popitem(last=False)
        elif any(point[0] == ts_ms and point[4] == version for point in state.history) or (
            len(state.history) == self.history_points and ts_ms < state.history[0][0]
        ):
            return False
        state.history.append((ts_ms, rul, lower, upper, version))
        if len(state.history) > 1 and state.history[-2][0] > ts_ms:
            state.history = deque(sorted(state.history), maxlen=self.history_points)
        if ts_ms >= state.latest_ts_ms:
            state.latest, state.latest_ts_ms = prediction, ts_ms
        self._assets.move_to_end(asset_id)
        self.predictions_seen += 1
        moment = time.monotonic() if now is None else now
        self._arrivals.append(moment)
        return True

    def predictions_per_minute(self, now: float | None = None) -> int:
        """Predictions recorded in the last minute."""
        moment = time.monotonic() if now is None else now
        while self._arrivals and self._arrivals[0] < moment - RATE_WINDOW_S:
            self._arrivals.popleft()
        return len(self._arrivals)

    def under_threshold(self, threshold: float) -> int:
        """Assets whose latest predicted RUL is below `threshold`."""
        return sum(
            1 for state in self._assets.values() if state.latest["rul_prediction"] < threshold
        )

    def snapshot(self, limit: int = 200, threshold: float = 30.0) -> dict[str, Any]:
        """The page's data: assets by ascending predicted RUL (most urgent first).

        Records come from any producer of the topic, so every field but the checked
        `rul` is typed here: a value of another type shows as null (or no score).
        """
        ordered = sorted(
            self._assets.items(), key=lambda item: (item[1].latest["rul_prediction"], item[0])
        )
        assets = []
        for asset_id, state in ordered[:limit]:
            latest = state.latest
            assets.append(
                {
                    "asset_id": asset_id,
                    "asset_class": _text(latest.get("asset_class")),
                    "rul": latest["rul_prediction"],
                    "lower": _number(latest.get("confidence_interval_lower")),
                    "upper": _number(latest.get("confidence_interval_upper")),
                    "confidence_level": _number(latest.get("confidence_level")),
                    "timestamp": _text(latest.get("timestamp")) or _number(latest.get("timestamp")),
                    "model_version": _text(latest.get("model_version")),
                    "model_scores": _scores(latest.get("model_scores")),
                    "history": [
                        {"t": ts, "rul": rul, "lower": lower, "upper": upper}
                        for ts, rul, lower, upper, _ in state.history
                    ],
                }
            )
        classes: dict[str, int] = {}
        for state in self._assets.values():
            name = _text(state.latest.get("asset_class")) or "unclassified"
            classes[name] = classes.get(name, 0) + 1
        return {
            "assets": assets,
            "asset_count": len(self._assets),
            "classes": dict(sorted(classes.items())),
            "under_threshold": self.under_threshold(threshold),
            "threshold": threshold,
            "predictions_seen": self.predictions_seen,
            "predictions_per_minute": self.predictions_per_minute(),
        }


def decode_prediction(value: bytes | None) -> dict[str, Any] | None:
    """A predictions-topic value as a dict, or None when it is not a JSON object."""
    if not value:
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


async def follow_predictions(
    settings: Settings, fleet: FleetView, stop: asyncio.Event | None = None
) -> None:
    """Feed `fleet` from the predictions topic until cancelled, reconnecting on errors.

    It also sets the assets-under-threshold gauge: from the whole topic, every worker
    reports the same fleet-wide count (dashboards take the max over workers).

    Starts `fleet_backlog_per_partition` records before each partition's end, the end
    being the FETCH high watermark (ListOffsets is wrong on the embedded broker).
    """
    topic = settings.topic_predictions
    backlog = settings.fleet_backlog_per_partition
    threshold = settings.rul_alert_threshold_cycles
    while stop is None or not stop.is_set():
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **aiokafka_kwargs(settings),
        )
        try:
            await consumer.start()
            partitions = await wait_for_partitions(consumer, topic, None, poll_s=2.0)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            trimmed: set[TopicPartition] = set()
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for tp, messages in batches.items():
                    floor = 0
                    if tp not in trimmed:
                        highwater = consumer.highwater(tp)
                        floor = max(0, (highwater or 0) - backlog)
                        trimmed.add(tp)
                        if messages and messages[0].offset < floor:
                            consumer.seek(tp, floor)
                    for message in messages:
                        if message.offset < floor:
                            continue
                        decoded = decode_prediction(message.value)
                        if decoded is None:
                            fleet.rejected += 1
                        else:
                            fleet.record_prediction(decoded)
                if batches:
                    ASSETS_UNDER_THRESHOLD.set(fleet.under_threshold(threshold))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("event=fleet_feed_error retry_in_s=5 error=%r", exc)
            await asyncio.sleep(5.0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
