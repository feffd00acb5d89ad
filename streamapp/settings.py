"""The one settings object of streamapp.

Every setting is read, in increasing priority, from its default, from
`.streamapp/dev.env` (written by `streamapp dev up`), from `.env`, from the
process environment, and from CLI flags (which call `configure`). The environment
variable of a field is its name in upper case (`kafka_bootstrap_servers` ->
`KAFKA_BOOTSTRAP_SERVERS`). Secrets are `SecretStr`, so they never show in logs,
reprs or `streamapp config`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_ENV_FILE = Path(".streamapp/dev.env")

MiB = 1024 * 1024


class Settings(BaseSettings):
    """All configuration of the workers and the CLI, with documented defaults."""

    model_config = SettingsConfigDict(
        env_file=(str(DEV_ENV_FILE), ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- Kafka -----------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka bootstrap servers, comma separated."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol, passed to aiokafka."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for TLS to the brokers.")
    kafka_group_id: str = Field("streamapp", description="Consumer group and Faust app id.")
    kafka_session_timeout_s: float = Field(
        10.0, description="Consumer session timeout (short: fast joins on the embedded broker)."
    )
    kafka_rebalance_timeout_s: float = Field(10.0, description="Consumer rebalance timeout.")
    kafka_heartbeat_interval_s: float = Field(1.0, description="Consumer heartbeat interval.")
    kafka_producer_request_timeout_s: float = Field(
        40.0,
        gt=0,
        description="Longest wait for a broker to take a produced record. A batched agent "
        "whose publish times out stops the worker, which replays from its committed offsets "
        "(Faust's default, 1,200 s, would hold a rebalance that long).",
    )
    kafka_max_message_bytes: int = Field(
        8 * MiB,
        ge=1024,
        description="Largest record the workers fetch and produce (dead letters copy input "
        "records byte for byte, so it must be at least the input topics' max.message.bytes).",
    )
    kafka_startup_timeout_s: float = Field(
        300.0,
        ge=0,
        description="How long a starting worker waits for a broker to answer (retrying "
        "every 2 s) before it exits; 0 waits forever.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        50,
        ge=1,
        le=30000,
        description="Longest a worker's fetch waits for records; brokers that hold fetches "
        "for the whole wait (the embedded one does) add up to this much latency.",
    )
    kafka_max_poll_records: int = Field(
        2000,
        ge=1,
        description="Most fetched records a worker turns into Python objects at once; the "
        "rest of a fetch response waits as its compact bytes. Bounds a burst's memory "
        "without asking the broker for anything (aiokafka's max_poll_records).",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new consumer group starts reading."
    )
    kafka_replication_factor: int = Field(
        1,
        ge=1,
        description="Replication factor of the topics the workers create (table "
        "changelogs, repartition topics); `dev up --brokers 3` writes 3.",
    )
    rebuild_stale_state: bool = Field(
        False,
        description="On an external broker, let a worker whose local table state is ahead "
        "of its changelog (the broker lost or truncated the changelog) discard that "
        "partition's state and rebuild it from the changelog instead of exiting. Always "
        "on for the embedded stack.",
    )

    # --- Embedded stack (`streamapp dev`, tests, benchmarks) ----------------------
    streamapp_broker: Literal["kafka", "tansu"] = Field(
        "kafka",
        description="Embedded broker: Apache Kafka (KRaft), or the Tansu fallback, which "
        "is also taken, with a warning, where Java or Maven is missing.",
    )
    kafka_jars_cache: Path = Field(
        Path("~/.cache/streamapp"),
        description="Where Maven's copy of the embedded Apache Kafka's jars is kept, so "
        "later starts need no network.",
    )
    embedded_stack: bool = Field(
        False,
        description="Set by `dev up` in .streamapp/dev.env: the broker is the embedded "
        "one, whose log `dev down --wipe` deletes together with the workers' state.",
    )

    # --- S3 --------------------------------------------------------------------
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint URL (MinIO, moto); unset means AWS S3."
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_bucket: str = Field("streamapp-archive", description="Bucket of the archive.")
    s3_key: SecretStr | None = Field(None, description="S3 access key id (secret).")
    s3_secret: SecretStr | None = Field(None, description="S3 secret access key (secret).")
    s3_prefix: str = Field("archive", description="Key prefix of the archive in the bucket.")

    # --- Topics ----------------------------------------------------------------
    topic_telemetry: str = Field("telemetry", description="Normalised telemetry topic.")
    topic_tesla: str = Field("tesla_V", description="Tesla fleet-telemetry topic (VIN keyed).")
    topic_features: str = Field("extracted-features", description="Extracted features topic.")
    topic_predictions: str = Field("rul-predictions", description="RUL predictions topic.")
    topic_charge_sessions: str = Field(
        "charge-sessions", description="Closed EV charge sessions (VIN keyed)."
    )
    topic_battery_health: str = Field(
        "battery-health", description="Weekly battery State of Health per VIN (VIN keyed)."
    )
    dlq_suffix: str = Field(".dlq", description="Suffix of each input topic's dead-letter topic.")
    topic_partitions: int = Field(8, ge=1, description="Partitions of topics the app creates.")

    # --- Paths -----------------------------------------------------------------
    data_dir: Path = Field(
        Path(".streamapp/data"), description="Worker state: RocksDB tables, pid files."
    )
    models_dir: Path = Field(
        Path("models"),
        description="Trained model versions per asset class (<class>/<version>) and each "
        "class's ACTIVE; with MODELS_URL, this worker's local mirror of the bucket.",
    )
    models_url: str | None = Field(
        None,
        description="s3://bucket/prefix holding the model versions and ACTIVE pointers "
        "(unset: MODELS_DIR alone); workers follow its activations.",
    )
    battery_config: Path | None = Field(
        None,
        description="Battery rules and vehicle table (unset: the shipped "
        "streamapp/battery/battery.yaml; a file overrides only the keys it names).",
    )
    battery_eol_soh: float = Field(
        80.0, gt=0, lt=100, description="State of Health (%) at which a battery's life ends."
    )
    asset_classes: Path | None = Field(
        None,
        description="Asset classes and the rules that assign them (unset: the shipped "
        "streamapp/assets/classes.yaml).",
    )

    # --- Web -------------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Interface of the worker's web server.")
    web_port: int = Field(6066, description="Port of the worker's web server.")
    api_key: SecretStr | None = Field(
        None, description="Key required in X-Api-Key by mutating HTTP endpoints (secret)."
    )
    http_max_body_bytes: int = Field(4 * MiB, description="Largest accepted HTTP request body.")
    http_rate_predict_per_s: float = Field(
        10.0,
        ge=0,
        description="POST /api/v1/rul/predict requests a second one client may make on "
        "average (token bucket refill; each runs the ensemble); 0 disables the limit.",
    )
    http_rate_predict_burst: int = Field(
        20, ge=1, description="POST /api/v1/rul/predict requests one client may make at once."
    )
    http_rate_train_per_s: float = Field(
        0.1,
        ge=0,
        description="POST /api/v1/rul/train requests a second one client may make on "
        "average (each may start a training process); 0 disables the limit.",
    )
    http_rate_train_burst: int = Field(
        3, ge=1, description="POST /api/v1/rul/train requests one client may make at once."
    )
    http_rate_telemetry_per_s: float = Field(
        100.0,
        ge=0,
        description="POST /api/v1/telemetry requests a second one client may make on "
        "average (every device sending with the key is one client); 0 disables the limit.",
    )
    http_rate_telemetry_burst: int = Field(
        200, ge=1, description="POST /api/v1/telemetry requests one client may make at once."
    )
    http_rate_max_clients: int = Field(
        10000,
        ge=1,
        description="Clients whose rate-limit buckets a worker keeps per endpoint (least "
        "recently seen forgotten; a forgotten client starts again with a full bucket).",
    )
    http_trust_forwarded_for: bool = Field(
        False,
        description="Rate-limit callers without the key by the last X-Forwarded-For address "
        "(set by a reverse proxy in front of the workers) instead of the peer address.",
    )
    fleet_backlog_per_partition: int = Field(
        500, ge=0, description="Fleet page: predictions re-read per partition at worker start."
    )
    fleet_history_points: int = Field(
        120, ge=2, description="Fleet page: predictions kept per asset for its RUL chart."
    )
    fleet_max_assets: int = Field(
        5000, ge=1, description="Fleet page: assets kept (least recently updated dropped)."
    )
    rul_alert_threshold_cycles: float = Field(
        30.0, gt=0, description="Predicted RUL under which an asset counts as needing attention."
    )

    # --- Validation ------------------------------------------------------------
    max_payload_bytes: int = Field(1 * MiB, description="Largest accepted telemetry message.")

    # --- Archive ---------------------------------------------------------------
    buffer_size: int = Field(1000, ge=1, description="Messages per partition before a flush.")
    buffer_max_bytes: int = Field(8 * MiB, ge=1, description="Bytes per partition before a flush.")
    buffer_flush_interval: float = Field(
        30.0, gt=0, description="Seconds before a non-empty partition buffer is flushed."
    )
    worker_buffer_max_bytes: int = Field(
        64 * MiB, ge=1, description="Per-worker cap on buffered bytes (backpressure)."
    )
    compression_interval: float = Field(
        300.0, gt=0, description="Seconds between compaction passes in the worker."
    )
    compaction_grace: float = Field(
        300.0, ge=0, description="Seconds after an hour ends before it may be compacted."
    )
    temp_retention: float = Field(
        86400.0, ge=0, description="Age in seconds after which compacted temp objects go."
    )
    archive_compaction_max_rows: int = Field(
        100_000,
        ge=1,
        description="Most rows (about 1 KiB each in memory) a compaction pass holds: an "
        "hour with more is compacted in shards of assets, its temp objects read per shard.",
    )
    buffer_asset_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Share of the worker buffer cap one asset may hold before its partition "
        "is flushed early, so a chatty asset cannot starve the others.",
    )
    s3_retry_max_backoff: float = Field(
        30.0, gt=0, description="Longest pause in seconds between retries of a failing S3 call."
    )

    # --- Features --------------------------------------------------------------
    window_kind: Literal["tumbling", "hopping", "cycle"] = Field(
        "tumbling", description="Feature window: tumbling, hopping (size+step) or cycle."
    )
    window_size: float = Field(10.0, gt=0, description="Window size in seconds.")
    window_step: float | None = Field(None, description="Hop of hopping windows in seconds.")
    window_grace: float = Field(
        5.0, ge=0, description="Seconds after a window's end before it closes."
    )
    feature_signals: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Signals to compute features for; empty means all."
    )
    feature_names: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Features to emit; empty means all of them."
    )

    feature_batch_size: int = Field(
        20000, ge=1, description="Most telemetry records the feature agent applies per batch."
    )
    feature_batch_within_s: float = Field(
        1.0, gt=0, description="Longest wait to fill a feature batch (bounds emission delay)."
    )
    window_idle_timeout: float = Field(
        3600.0,
        gt=0,
        description="Seconds of event time, on the clock of the asset's partition (the "
        "largest ts seen there), after an asset's last record when its open windows are "
        "emitted and its state is deleted from the table; records older than that clock "
        "minus this are late for every asset. At least window size + grace.",
    )
    feature_state_cache_assets: int = Field(
        10000,
        ge=1,
        description="Decoded asset states the feature agent keeps in memory (least "
        "recently used dropped first; the RocksDB table stays the truth).",
    )

    # --- Worker memory (RocksDB: every table of a worker) ---------------------------
    rocksdb_memory_bytes: int = Field(
        64 * MiB,
        ge=8 * MiB,
        description="RocksDB memory of a worker, all tables and partitions together: one "
        "LRU block cache that data, index and filter blocks and the memtables are charged to.",
    )
    rocksdb_write_buffer_bytes: int = Field(
        16 * MiB,
        ge=4 * MiB,
        description="Part of ROCKSDB_MEMORY_BYTES that memtables may take before RocksDB "
        "flushes them to disk (one memtable is a quarter of it).",
    )
    malloc_arena_max: int = Field(
        2,
        ge=0,
        description="glibc malloc arenas of a worker process (0: glibc's default, up to 8 "
        "per core, one per allocating thread, whose freed memory stays scattered).",
    )
    malloc_trim_interval: float = Field(
        10.0,
        ge=0,
        description="Seconds between returns of a worker's freed native memory to the "
        "system (glibc malloc_trim; 0: never, the RSS then keeps each burst's peak).",
    )

    # --- RUL serving -------------------------------------------------------------
    rul_batch_size: int = Field(512, ge=1, description="Most feature records per inference.")
    rul_batch_timeout_ms: float = Field(
        20.0, ge=0, description="Longest wait to fill an inference batch."
    )
    rul_sequence_length: int = Field(
        60, ge=1, description="Feature rows kept per asset while no model names its window."
    )
    rul_state_cache_assets: int = Field(
        10000,
        ge=1,
        description="Decoded sequences the RUL agent keeps in memory (least recently used "
        "dropped; those of batches not yet written to the table are kept beyond it).",
    )
    torch_threads: int = Field(1, ge=1, description="Intra-op threads of torch in a worker.")
    rul_inference_threads: int = Field(
        2,
        ge=1,
        description="Threads running pieces of an inference (each member's 128-row slices) "
        "at the same time (each with TORCH_THREADS intra-op threads; 2 x 1 uses both cores "
        "of a 2-core box without torch's spinning intra-op barriers).",
    )

    @field_validator("kafka_jars_cache", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("feature_signals", "feature_names", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        """Accept `a,b,c` from the environment as well as JSON lists."""
        if isinstance(value, str):
            if value.startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("models_url", mode="after")
    @classmethod
    def _models_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or not value[5:].split("/", 1)[0]):
            raise ValueError("MODELS_URL must be s3://bucket/prefix")
        return value or None

    def dlq_topic(self, topic: str) -> str:
        """The dead-letter topic of an input topic."""
        return f"{topic}{self.dlq_suffix}"

    def public_dict(self) -> dict[str, Any]:
        """Settings as printable values, secrets masked."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "**********"
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        return shown


_overrides: dict[str, Any] = {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once (after any CLI `configure`)."""
    return Settings(**_overrides)


def configure(**overrides: Any) -> Settings:
    """Apply CLI flag values on top of env and files; None means "flag not given"."""
    _overrides.update({key: value for key, value in overrides.items() if value is not None})
    get_settings.cache_clear()
    return get_settings()
