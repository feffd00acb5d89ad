"""The fleet view behind the live page: the latest RUL prediction and recent history per
asset, and the latest battery health and SoH trend per EV.

Each worker reads the whole predictions topic itself, with a group-less consumer
(no commits, no rebalances, nobody disturbed). Its RUL agent only sees the assets
of its own partitions, so a store fed in-process would show a different fraction
of the fleet on every worker; reading the topic gives every worker's page the
whole fleet, including predictions published by other workers or by any upstream
service, and survives a worker restart by re-reading a bounded backlog.

`FleetView.record_prediction` is idempotent on (asset, timestamp, model version),
so feeding it from an agent as well as from the topic never double-counts. EVs come
the same way from the `battery-health` topic (`FleetView.record_battery_health`, one
record per VIN and ISO week; a week read again replaces itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
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


@dataclass(slots=True)
class EvState:
    """What the page shows of one EV: its newest week's record, that week and its SoH
    (typed), and the SoH per week of the weeks that had one, oldest first."""

    latest: dict[str, Any]
    week: str
    soh: float | None
    trend: dict[str, float]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _iso_date(value: Any) -> str | None:
    """An ISO date in its canonical form (so that dates order as text), else None."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _end_of_life(value: Any) -> dict[str, Any] | None:
    """A battery-health record's projected end of life, typed field by field."""
    if not isinstance(value, dict):
        return None
    return {
        "threshold": _number(value.get("threshold")),
        "date": _iso_date(value.get("date")),
        "date_lower": _iso_date(value.get("date_lower")),
        "date_upper": _iso_date(value.get("date_upper")),
        "odometer_km": _number(value.get("odometer_km")),
    }


def _scores(value: Any) -> dict[str, float]:
    """A record's per-member predictions, those that are finite numbers."""
    if not isinstance(value, dict):
        return {}
    numbers = {name: _number(score) for name, score in value.items()}
    return {name: score for name, score in numbers.items() if score is not None}


class FleetView:
    """Latest predictions of every asset and health of every EV, bounded in assets (EVs)
    and in points (weeks) per asset (EV)."""

    def __init__(self, history_points: int = 120, max_assets: int = 5000) -> None:
        self.history_points = history_points
        self.max_assets = max_assets
        self._assets: OrderedDict[str, AssetState] = OrderedDict()
        self._evs: OrderedDict[str, EvState] = OrderedDict()
        self._arrivals: deque[float] = deque()
        self.predictions_seen = 0
        self.rejected = 0
        self.battery_records_seen = 0
        self.battery_rejected = 0

    def record_prediction(
        self, prediction: dict[str, Any] | None, now: float | None = None
    ) -> bool:
        """Add one `rul-predictions` record; False if malformed (None: not a JSON object)
        or already recorded."""
        if not isinstance(prediction, dict):
            self.rejected += 1
            return False
        asset_id = prediction.get("asset_id")
        rul = _number(prediction.get("rul_prediction"))
        ts_ms = parse_ts(prediction.get("timestamp"))
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

    def record_battery_health(self, record: dict[str, Any] | None) -> bool:
        """Add one `battery-health` record; False if malformed (None: not a JSON object; no
        VIN or no ISO week). A week seen again replaces its SoH in the trend."""
        vin = record.get("vin") if isinstance(record, dict) else None
        week = _iso_date(record.get("week")) if isinstance(record, dict) else None
        if record is None or not isinstance(vin, str) or not vin or week is None:
            self.battery_rejected += 1
            return False
        soh = _number(record.get("soh"))
        state = self._evs.get(vin)
        if state is None:
            state = EvState(record, week, soh, {})
            self._evs[vin] = state
            while len(self._evs) > self.max_assets:
                self._evs.popitem(last=False)
        elif week >= state.week:
            state.latest, state.week, state.soh = record, week, soh
        if soh is not None:
            late = bool(state.trend) and week < next(reversed(state.trend))
            state.trend[week] = soh
            if late:
                state.trend = dict(sorted(state.trend.items()))
            while len(state.trend) > self.history_points:
                del state.trend[next(iter(state.trend))]
        self._evs.move_to_end(vin)
        self.battery_records_seen += 1
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

    def evs_under_threshold(self, threshold: float) -> int:
        """EVs whose latest SoH is at or under `threshold` (BATTERY_EOL_SOH)."""
        return sum(
            1 for state in self._evs.values() if state.soh is not None and state.soh <= threshold
        )

    def evs(self, limit: int) -> list[dict[str, Any]]:
        """The EVs by ascending latest SoH (most worn first; those without one last)."""
        ordered = sorted(
            self._evs.items(),
            key=lambda item: (item[1].soh is None, item[1].soh or 0.0, item[0]),
        )
        evs = []
        for vin, state in ordered[:limit]:
            latest = state.latest
            evs.append(
                {
                    "vin": vin,
                    "week": state.week,
                    "soh": state.soh,
                    "soh_lower": _number(latest.get("soh_lower")),
                    "soh_upper": _number(latest.get("soh_upper")),
                    "nominal_kwh": _number(latest.get("nominal_kwh")),
                    "nominal_source": _text(latest.get("nominal_source")),
                    "end_of_life": _end_of_life(latest.get("end_of_life")),
                    "trend": [{"week": week, "soh": soh} for week, soh in state.trend.items()],
                }
            )
        return evs

    def snapshot(
        self, limit: int = 200, threshold: float = 30.0, eol_soh: float = 80.0
    ) -> dict[str, Any]:
        """The page's data: assets by ascending predicted RUL (most urgent first), and EVs
        by ascending SoH, `limit` of each.

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
            "evs": self.evs(limit),
            "ev_count": len(self._evs),
            "evs_under_threshold": self.evs_under_threshold(eol_soh),
            "eol_soh": eol_soh,
        }


def decode_record(value: bytes | None) -> dict[str, Any] | None:
    """A topic value as a dict, or None when it is not a JSON object."""
    if not value:
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


async def follow_topic(
    settings: Settings,
    topic: str,
    record: Callable[[dict[str, Any] | None], object],
    backlog: int | None = None,
    after_batch: Callable[[], object] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Pass every record of `topic` to `record` (decoded; None when it is not a JSON
    object) until cancelled, reconnecting on errors; `after_batch` runs after each
    non-empty batch.

    With a `backlog`, starts that many records before each partition's end, the end
    being the FETCH high watermark (ListOffsets is wrong on the embedded broker);
    without one, reads the whole topic.
    """
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
                    if backlog is not None and tp not in trimmed:
                        highwater = consumer.highwater(tp)
                        floor = max(0, (highwater or 0) - backlog)
                        trimmed.add(tp)
                        if messages and messages[0].offset < floor:
                            consumer.seek(tp, floor)
                    for message in messages:
                        if message.offset >= floor:
                            record(decode_record(message.value))
                if batches and after_batch is not None:
                    after_batch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("event=fleet_feed_error topic=%s retry_in_s=5 error=%r", topic, exc)
            await asyncio.sleep(5.0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


async def follow_predictions(
    settings: Settings, fleet: FleetView, stop: asyncio.Event | None = None
) -> None:
    """Feed `fleet` from the last `fleet_backlog_per_partition` predictions of each
    partition on, until cancelled.

    It also sets the assets-under-threshold gauge: from the whole topic, every worker
    reports the same fleet-wide count (dashboards take the max over workers).
    """
    threshold = settings.rul_alert_threshold_cycles
    await follow_topic(
        settings,
        settings.topic_predictions,
        fleet.record_prediction,
        settings.fleet_backlog_per_partition,
        lambda: ASSETS_UNDER_THRESHOLD.set(fleet.under_threshold(threshold)),
        stop,
    )


async def follow_battery_health(
    settings: Settings, fleet: FleetView, stop: asyncio.Event | None = None
) -> None:
    """Feed `fleet`'s EVs from the whole battery-health topic, until cancelled.

    Whole, not a backlog: it holds one small record per VIN and week (a year's
    retention), and an EV's trend needs its past weeks, which a tail per partition
    would cut for some VINs and not for others.
    """
    await follow_topic(
        settings, settings.topic_battery_health, fleet.record_battery_health, stop=stop
    )
