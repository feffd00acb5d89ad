"""Faust's own statistics and consumer lag as Prometheus metrics.

Faust ships a Prometheus monitor, but it replaces `app.monitor`, names metrics after
the app id (which differs per deployment, so dashboards could not be shared) and
counts latencies in milliseconds. This sensor sits beside the default monitor and
uses stable `streamapp_faust_*` names in seconds.

Consumer lag is computed at scrape time from the high watermark carried by the last
FETCH response of each partition minus the position committed by Faust. It never
calls ListOffsets (`end_offsets`), which the embedded broker answers wrongly and
which would cost a broker round trip per scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from time import monotonic
from typing import Any

import faust
from faust.sensors import Sensor
from faust.types import (
    TP,
    AppT,
    CollectionT,
    EventT,
    Message,
    PendingMessage,
    RecordMetadata,
    StreamT,
)
from faust.types.transports import ConsumerT, ProducerT
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streamapp.runtime import introspect
from streamapp.runtime.metrics import (
    EVENTS,
    LATENCY_BUCKETS,
    MESSAGES_RECEIVED,
    MESSAGES_SENT,
    SEND_SECONDS,
    TABLE_OPERATIONS,
)
from streamapp.settings import Settings

logger = logging.getLogger(__name__)

REBALANCE_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

EVENT_SECONDS = Histogram(
    "streamapp_faust_event_processing_seconds",
    "Time from an event entering a stream to its acknowledgement.",
    buckets=LATENCY_BUCKETS,
)
SEND_ERRORS = Counter(
    "streamapp_faust_send_errors_total",
    "Sends the broker did not acknowledge, per topic.",
    ["topic"],
)
COMMITS = Counter("streamapp_faust_commits_total", "Offset commits completed by the worker.")
COMMIT_SECONDS = Histogram(
    "streamapp_faust_commit_latency_seconds",
    "Duration of an offset commit.",
    buckets=LATENCY_BUCKETS,
)
REBALANCES = Counter(
    "streamapp_faust_rebalances_total", "Consumer group rebalances this worker went through."
)
REBALANCE_SECONDS = Histogram(
    "streamapp_faust_rebalance_seconds",
    "Duration of a rebalance, table recovery included.",
    buckets=REBALANCE_BUCKETS,
)
BUFFER_FULL = Counter(
    "streamapp_faust_topic_buffer_full_total",
    "Times a stream's buffer was full and the consumer had to wait (backpressure), per topic.",
    ["topic"],
)


class StreamappSensor(Sensor):
    """Feeds the counters and histograms above from Faust's sensor callbacks."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        MESSAGES_RECEIVED.labels(tp.topic).inc()

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[str, float]:
        EVENTS.labels(tp.topic).inc()
        return {"start": monotonic()}

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT,
        event: EventT,
        state: dict[str, float] | None = None,
    ) -> None:
        if state is not None:
            EVENT_SECONDS.observe(monotonic() - state["start"])

    def on_topic_buffer_full(self, tp: TP) -> None:
        BUFFER_FULL.labels(tp.topic).inc()

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        TABLE_OPERATIONS.labels(table.name, "get").inc()

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        TABLE_OPERATIONS.labels(table.name, "set").inc()

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        TABLE_OPERATIONS.labels(table.name, "del").inc()

    def on_commit_initiated(self, consumer: ConsumerT) -> float:
        return monotonic()

    def on_commit_completed(self, consumer: ConsumerT, state: Any) -> None:
        COMMITS.inc()
        COMMIT_SECONDS.observe(monotonic() - float(state))

    def on_send_initiated(
        self,
        producer: ProducerT,
        topic: str,
        message: PendingMessage,
        keysize: int,
        valsize: int,
    ) -> tuple[str, float]:
        return topic, monotonic()

    def on_send_completed(self, producer: ProducerT, state: Any, metadata: RecordMetadata) -> None:
        topic, start = state
        MESSAGES_SENT.labels(topic).inc()
        SEND_SECONDS.observe(monotonic() - start)

    def on_send_error(self, producer: ProducerT, exc: BaseException, state: Any) -> None:
        topic, _ = state
        SEND_ERRORS.labels(topic).inc()

    def on_rebalance_start(self, app: AppT) -> dict[str, float]:
        REBALANCES.inc()
        return {"start": monotonic()}

    def on_rebalance_end(self, app: AppT, state: dict[str, float]) -> None:
        REBALANCE_SECONDS.observe(monotonic() - state["start"])


def partition_lag(highwater: int | None, position: int | None) -> int | None:
    """Messages behind in one partition; None while the fetch has not told us the end."""
    if highwater is None or position is None:
        return None
    return max(0, highwater - position)


class FaustStateCollector(Collector):
    """Lag, assignment and table sizes read from the running app at scrape time."""

    def __init__(self) -> None:
        self.app: faust.App | None = None

    def bind(self, app: faust.App) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "streamapp_consumer_lag_messages",
            "Messages not yet processed and committed, per input partition assigned to this "
            "worker (fetch high watermark minus committed offset).",
            labels=["topic", "partition"],
        )
        highwaters = GaugeMetricFamily(
            "streamapp_consumer_highwater_offset",
            "High watermark of each assigned input partition, from the last fetch response.",
            labels=["topic", "partition"],
        )
        assigned = GaugeMetricFamily(
            "streamapp_faust_assigned_partitions",
            "Partitions assigned to this worker, changelogs included.",
        )
        tables = GaugeMetricFamily(
            "streamapp_faust_table_keys",
            "Approximate keys held in the active partitions of each table.",
            labels=["table"],
        )
        app = self.app
        if app is not None and app.consumer is not None and app.started:
            try:
                assigned.add_metric([], len(app.consumer.assignment()))
            except Exception:  # the consumer thread is not started yet
                assigned.add_metric([], 0)
            for tp, highwater, position in introspect.input_positions(app):
                behind = partition_lag(highwater, position)
                if behind is not None:
                    lag.add_metric([tp.topic, str(tp.partition)], behind)
                if highwater is not None:
                    highwaters.add_metric([tp.topic, str(tp.partition)], highwater)
            for name, table in app.tables.items():
                try:
                    tables.add_metric([name], introspect.table_keys(table))
                except Exception as exc:  # a scrape must never fail on one table
                    logger.debug("event=table_size_unavailable table=%s error=%r", name, exc)
        yield lag
        yield highwaters
        yield assigned
        yield tables

    def describe(self) -> list[GaugeMetricFamily]:
        """Names only: registration must not touch an app that is not running."""
        return [
            GaugeMetricFamily("streamapp_consumer_lag_messages", "", labels=["topic", "partition"]),
            GaugeMetricFamily(
                "streamapp_consumer_highwater_offset", "", labels=["topic", "partition"]
            ),
            GaugeMetricFamily("streamapp_faust_assigned_partitions", ""),
            GaugeMetricFamily("streamapp_faust_table_keys", "", labels=["table"]),
        ]


STATE_COLLECTOR = FaustStateCollector()
REGISTRY.register(STATE_COLLECTOR)


def register(app: faust.App, settings: Settings) -> None:
    """Attach the sensor and point the scrape-time collector at this app."""
    app.sensors.add(StreamappSensor())
    STATE_COLLECTOR.bind(app)
