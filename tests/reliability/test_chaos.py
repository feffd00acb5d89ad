"""The chaos run: two workers under SIGKILLs, a broker cut and an S3 cut, nothing lost.

A dedicated Tansu broker advertises a loopback proxy as its address, so every
connection of the workers (bootstrap and partition leaders) goes through a proxy the
test can cut; moto sits behind another. Neither server restarts: both keep their data
only in memory. Afterwards the archive, the feature windows and the predictions are
compared with what a fault-free pipeline computes offline, and every consumer group
offset must have caught up.

`make chaos` runs the full size; `--chaos-scale 0.2` (or CHAOS_SCALE=0.2) the CI one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamapp import s3
from streamapp.archive.compaction import compact
from streamapp.archive.verify import is_clean, verify
from streamapp.dev.stack import _clean_env, broker_binary, free_port, stop_process
from streamapp.features.agent import extractor_from, repartition_topic_name
from streamapp.ingest.validation import format_ts
from streamapp.kafka import topics
from streamapp.rul import replay as cmapss_replay
from streamapp.rul.artifacts import load_active
from streamapp.rul.data import load_cmapss
from streamapp.rul.evaluate import evaluate
from streamapp.rul.serving import Ensemble
from tests.conftest import ROOT, settings_from_env, stack_env
from tests.reliability import corpus
from tests.reliability.expected import (
    check_identical_repeats,
    check_predictions,
    check_windows,
    expected_predictions,
    expected_windows,
    telemetry_records,
)
from tests.reliability.traffic import (
    Collected,
    collect,
    group_lag,
    partition_lag,
    predictions_of,
    produce,
    windows_of,
)
from tests.support.ops import counter_total, scrape
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(3600)]

CMAPSS = ROOT.parent / "shared" / "data" / "cmapss"
CUT_S = 20.0
SECRETS = {"S3_SECRET": "CHAOS-S3-9e1f0c2b7d", "API_KEY": "CHAOS-APIKEY-44a1be07"}
FAULTS = ("kill", "kill", "broker_cut", "kill", "s3_cut", "kill", "kill", None)


@contextlib.contextmanager
def proxied_broker(log: Path) -> Iterator[tuple[str, TcpProxy]]:
    """A Tansu broker whose advertised address is a cuttable proxy in front of it."""
    real, front = free_port(), free_port()
    command = [
        broker_binary(),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{real}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{front}",
        "--storage-engine",
        "memory://tansu/",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=_clean_env(), start_new_session=True
        )
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", real), 1):
            break
        assert time.monotonic() < deadline and process.poll() is None, "Tansu did not start"
        time.sleep(0.2)
    proxy = TcpProxy("127.0.0.1", real, port=front).start()
    try:
        yield f"127.0.0.1:{front}", proxy
    finally:
        proxy.cut()
        stop_process(process.pid)


def fd001_offline(ensemble: Ensemble) -> dict[str, float]:
    """`streamapp evaluate`'s prediction for each FD001 test engine at its last cycle."""
    fleet = load_cmapss(CMAPSS, "FD001", "test")
    per_engine = evaluate(ensemble, fleet, "FD001")["per_engine"]
    return {
        f"FD001-test-{int(unit):03d}": pred
        for unit, pred in zip(per_engine["unit"], per_engine["pred"], strict=True)
    }


@pytest.mark.slow
def test_chaos_run_loses_and_duplicates_nothing(
    s3_server: str, start_worker, tmp_path: Path, chaos_scale: float
) -> None:
    if not CMAPSS.exists():
        pytest.skip(f"C-MAPSS data not found at {CMAPSS}")
    started = time.monotonic()
    rng = random.Random(8)
    assets = max(40, round(400 * chaos_scale))
    sim = corpus.valid_telemetry(assets, round(50_000 * chaos_scale), seed=11)
    units = max(10, round(100 * chaos_scale))
    s3_port = int(s3_server.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        bootstrap, broker_proxy = stack.enter_context(proxied_broker(tmp_path / "broker.log"))
        s3_proxy = stack.enter_context(TcpProxy("127.0.0.1", s3_port))
        env = stack_env(
            bootstrap,
            f"http://127.0.0.1:{s3_proxy.port}",
            WINDOW_KIND="cycle",
            WINDOW_GRACE="2",
            FEATURE_BATCH_WITHIN_S="0.2",
            BUFFER_FLUSH_INTERVAL="2",
            MODELS_DIR=str(ROOT / "models"),
            **SECRETS,
        )
        settings = settings_from_env(env)
        direct = settings.model_copy(update={"s3_endpoint": s3_server})
        asyncio.run(s3.ensure_bucket(direct))
        inputs = (settings.topic_telemetry, settings.topic_tesla, settings.topic_features)
        names = [*inputs, *(settings.dlq_topic(n) for n in inputs), settings.topic_predictions]
        specs = [topics.TopicSpec(n, settings.topic_partitions, 1) for n in names]
        asyncio.run(topics.apply(settings, specs))

        fleet = cmapss_replay.engines(CMAPSS, "FD001", "test", units, "FD001-test-")
        replay = [
            corpus.Message("valid", key, value)
            for key, value in cmapss_replay.messages(fleet, settings.window_grace)
        ]
        traffic = sim + replay
        windows = expected_windows(
            extractor_from(settings).spec,
            telemetry_records(traffic, [], settings.max_payload_bytes),
        )

        workers = [start_worker(env, name=f"chaos-{i}") for i in range(2)]
        for worker in workers:  # before the broker and proxies go (callbacks run LIFO)
            stack.callback(worker.stop)
        for worker in workers:
            worker.wait_ready(timeout=180)

        exits = 0

        def supervise() -> None:
            """Restart a worker that exited by itself, as systemd or Kubernetes would."""
            nonlocal exits
            for worker in workers:
                if not worker.alive():
                    exits += 1
                    worker.start()

        chunks = len(FAULTS)
        sim_step, replay_step = -(-len(sim) // chunks), -(-len(replay) // chunks)
        kills = 0
        for index, fault in enumerate(FAULTS):
            chunk = (
                sim[index * sim_step : (index + 1) * sim_step]
                + replay[index * replay_step : (index + 1) * replay_step]
            )
            asyncio.run(produce(settings, settings.topic_telemetry, chunk))
            time.sleep(rng.uniform(1.0, 4.0))
            supervise()
            if fault == "kill":
                victim = rng.choice(workers)
                victim.kill()
                kills += 1
                time.sleep(rng.uniform(0.0, 2.0))
                victim.start()
            elif fault is not None:
                proxy = broker_proxy if fault == "broker_cut" else s3_proxy
                proxy.cut()
                time.sleep(CUT_S)
                proxy.restore()
        for _ in range(3):
            supervise()
            with contextlib.suppress(AssertionError, TimeoutError):
                for worker in workers:
                    worker.wait_ready(timeout=300)
                break
        supervise()

        want_predictions = len(windows)
        consumed = [
            settings.topic_telemetry,
            settings.topic_features,
            repartition_topic_name(settings),
        ]

        def complete(found: Collected) -> bool:
            return (
                len(windows_of(found.values(settings.topic_features))) >= len(windows)
                and len(predictions_of(found.values(settings.topic_predictions)))
                >= want_predictions
            )

        found = asyncio.run(
            collect(
                settings,
                [settings.topic_features, settings.topic_predictions],
                complete,
                timeout_s=900 * max(chaos_scale, 0.2),
            )
        )
        deadline = time.monotonic() + 120
        while asyncio.run(group_lag(settings, consumed)) and time.monotonic() < deadline:
            time.sleep(2)
        lags = asyncio.run(partition_lag(settings, consumed))
        lag = sum(lags.values())
        if lag:
            print("\nstuck partitions:", {name: n for name, n in lags.items() if n})
            for worker in workers:
                families = scrape(worker) if worker.alive() else {}
                print(
                    worker.log_path.name,
                    {
                        name: counter_total(families, name)
                        for name in (
                            "streamapp_ingest_messages",
                            "streamapp_archive_messages",
                            "streamapp_feature_records",
                            "streamapp_feature_windows_emitted",
                            "streamapp_rul_predictions",
                        )
                    },
                )

        asyncio.run(compact(direct, [settings.topic_telemetry]))
        report = asyncio.run(verify(direct, settings.topic_telemetry))
        letters = sum(
            len(
                asyncio.run(collect(settings, [settings.dlq_topic(n)], lambda f: True, 3)).records[
                    settings.dlq_topic(n)
                ]
            )
            for n in inputs
        )
        emitted = windows_of(found.values(settings.topic_features))
        predictions = predictions_of(found.values(settings.topic_predictions))
        ensemble = load_active(ROOT / "models")
        lost = (
            report["missing"]["temp"]["count"]
            + report["missing"]["compressed"]["count"]
            + len(set(windows) - set(emitted))
            + max(0, want_predictions - len(predictions))
        )
        duplicated = (
            report["duplicates"]["temp"]["count"] + report["duplicates"]["compressed"]["count"]
        )
        print(
            f"\nCHAOS sent={len(traffic)} archived={report['temp_distinct_offsets']} "
            f"windows={len(emitted)} predictions={len(predictions)} dead_letters={letters} "
            f"lost={lost} duplicated={duplicated} kills={kills} self_exits={exits} lag={lag} "
            f"wall={time.monotonic() - started:.0f}s"
        )

        assert kills >= 5
        assert is_clean(report), report
        assert report["kafka_messages"] == len(traffic)
        assert report["compressed_rows"] == report["valid_messages"] == len(traffic)
        check_windows(emitted, windows)
        check_predictions(
            predictions,
            expected_predictions(
                ensemble, found.values(settings.topic_features), settings.max_payload_bytes
            ),
        )
        finals = fd001_offline(ensemble)
        for engine in fleet:
            if engine.asset_id not in finals:
                continue
            last = format_ts(cmapss_replay.BASE_TS_MS + len(engine.series) * cmapss_replay.CYCLE_MS)
            (final,) = {p["rul_prediction"] for p in predictions[(engine.asset_id, last)]}
            assert final == pytest.approx(finals[engine.asset_id], abs=1e-3), engine.asset_id
        assert lag == 0
        assert letters == 0
        for worker in workers:
            log = worker.log_path.read_text(errors="replace")
            for secret in SECRETS.values():
                assert secret not in log, f"a secret appears in {worker.log_path.name}"
        print(f"re-emitted predictions, all identical: {check_identical_repeats(predictions)}")
