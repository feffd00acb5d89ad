"""Prometheus metrics of the archive (default registry, `streamapp_archive_` prefix).

Messages archived per second is `rate(streamapp_archive_messages_total[1m])`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "streamapp_archive_messages_total",
    "Messages durably written to the temp layer, by topic.",
    ["topic"],
)
BYTES = Counter(
    "streamapp_archive_bytes_written_total",
    "Bytes of objects written to S3, by layer (temp/compressed).",
    ["layer"],
)
OBJECTS = Counter(
    "streamapp_archive_objects_written_total",
    "Objects written to S3, by layer (temp/compressed).",
    ["layer"],
)
SKIPPED = Counter(
    "streamapp_archive_replayed_skipped_total",
    "Replayed messages acknowledged without a write because S3 already holds their offset.",
    ["topic"],
)
BUFFER_MESSAGES = Gauge(
    "streamapp_archive_buffer_messages",
    "Messages buffered in memory, by topic and partition.",
    ["topic", "partition"],
)
BUFFER_BYTES = Gauge(
    "streamapp_archive_buffer_bytes",
    "Bytes buffered in memory, by topic and partition.",
    ["topic", "partition"],
)
HELD_BYTES = Gauge(
    "streamapp_archive_worker_held_bytes",
    "Bytes held by the worker (buffers and sealed batches not yet written).",
)
COMPRESSION_RATIO = Gauge(
    "streamapp_archive_compression_ratio",
    "Raw line bytes / written bytes of the latest object, by layer.",
    ["layer"],
)
S3_ERRORS = Counter(
    "streamapp_archive_s3_errors_total",
    "S3 calls that failed, by operation and kind (transient/permanent).",
    ["operation", "kind"],
)
S3_RETRIES = Counter(
    "streamapp_archive_s3_retries_total",
    "S3 calls retried after a transient error, by operation.",
    ["operation"],
)
FLUSH_SECONDS = Histogram(
    "streamapp_archive_flush_seconds",
    "Seconds from sealing a batch to its temp object being written.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
COMPACTED_ROWS = Counter(
    "streamapp_archive_compacted_rows_total",
    "Rows written to compressed Parquet files, by topic.",
    ["topic"],
)
TEMP_DELETED = Counter(
    "streamapp_archive_temp_deleted_total",
    "Temp objects deleted by retention after their hours were compacted.",
)
