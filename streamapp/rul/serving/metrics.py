"""Prometheus metrics of the streaming RUL agent (default registry, `streamapp_rul_` prefix).

Defined apart from the agent so the Predictions dashboard and the alert rules (in
`monitoring/`) and the agent agree on one set of names. `MODEL_LOADED` starts at 0
so that "model not loaded" is an alert on a value, not on a missing series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUL_BUCKETS = (5, 10, 20, 30, 50, 75, 100, 125, 150, 200, 300)
WIDTH_BUCKETS = (2, 5, 10, 15, 20, 30, 40, 60, 80, 120)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

PREDICTIONS = Counter(
    "streamapp_rul_predictions_total",
    "RUL predictions published to the predictions topic.",
)
SKIPPED = Counter(
    "streamapp_rul_predictions_skipped_total",
    "Feature records that produced no prediction, by reason (replayed, duplicate_window, "
    "no_model) and asset class.",
    ["reason", "asset_class"],
)
INFERENCE_SECONDS = Histogram(
    "streamapp_rul_inference_seconds",
    "Wall time of one ensemble forward pass over a batch.",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "streamapp_rul_batch_size",
    "Sequences per inference batch.",
    buckets=BATCH_BUCKETS,
)
MODEL_LOADED = Gauge(
    "streamapp_rul_model_loaded",
    "Per asset class, 1 for the model version serving its predictions in this worker; "
    "0 (version empty) while none is loaded.",
    ["asset_class", "version"],
)
PREDICTED_RUL = Histogram(
    "streamapp_rul_predicted_cycles",
    "Predicted remaining useful life (cycles) of each published prediction.",
    buckets=RUL_BUCKETS,
)
INTERVAL_WIDTH = Histogram(
    "streamapp_rul_interval_width_cycles",
    "Width (upper - lower, cycles) of each prediction's conformal interval.",
    buckets=WIDTH_BUCKETS,
)
ASSETS_UNDER_THRESHOLD = Gauge(
    "streamapp_rul_assets_under_threshold",
    "Assets whose latest predicted RUL is below rul_alert_threshold_cycles, over the whole "
    "predictions topic (set by the fleet view; the same in every worker).",
)
NO_MODEL = ""


def set_model_version(asset_class: str, version: str | None) -> None:
    """Make exactly one version series of the class read 1 (or the empty version read 0)."""
    for labels in [labels for labels in _loaded if labels[0] == asset_class]:
        MODEL_LOADED.remove(*labels)
        _loaded.discard(labels)
    labels = (asset_class, version or NO_MODEL)
    MODEL_LOADED.labels(*labels).set(1 if version else 0)
    _loaded.add(labels)


_loaded: set[tuple[str, str]] = set()
