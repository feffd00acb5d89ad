"""The chaos run: two workers under SIGKILLs, broker faults and an S3 cut, nothing lost.

The brokers (`tests.reliability.brokers`) sit behind loopback proxies the test can cut;
moto sits behind another. `make chaos` runs on a 3-node Apache Kafka cluster
(replication 3, min.insync.replicas=2, acks=all): besides the worker SIGKILLs and the
S3 cut it SIGKILLs the node that leads the most partitions and restarts it, and cuts
another node off (clients, replication and controller traffic). Afterwards the
archive, the feature windows and the predictions are compared with what a fault-free
pipeline computes offline, and every consumer group offset must have caught up.

`make chaos` runs the full size (`--chaos-scale` or CHAOS_SCALE scales its traffic);
`make test` runs the short one on one broker: less traffic and shorter cuts, a worker
kill, a broker cut and an S3 cut, the same checks. On Tansu (STREAMAPP_BROKER=tansu)
a broker kill becomes a cut: Tansu loses everything when it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from streamapp.archive.compaction import compact
from streamapp.archive.verify import is_clean, verify
from streamapp.contracts.codec import format_ts
from streamapp.features.agent import repartition_topic_name
from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.training import replay as cmapss_replay
from streamapp.rul.training.artifacts import load_active
from streamapp.rul.training.data import load_cmapss
from streamapp.rul.training.evaluate import evaluate
from tests.conftest import CMAPSS, provision, settings_from_env, stack_env
from tests.reliability import corpus
from tests.reliability.brokers import ProxiedBrokers
from tests.reliability.pipeline import MODELS, PIPELINE_ENV, Emitted, Expected
from tests.reliability.traffic import collect, group_lag, partition_lag, produce
from tests.support.ops import counter_total, scrape
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

SECRETS = {"S3_SECRET": "CHAOS-S3-9e1f0c2b7d", "API_KEY": "CHAOS-APIKEY-44a1be07"}
CHAOS_ENV = {
    **PIPELINE_ENV,
    "WINDOW_KIND": "cycle",
    "BUFFER_FLUSH_INTERVAL": "2",
    **SECRETS,
}


@dataclass(frozen=True)
class Plan:
    """A chaos run: its traffic, and the faults injected in order, one after each chunk."""

    messages: int
    assets: int
    engines: int
    faults: tuple[str | None, ...]
    cut_s: float
    catch_up_s: float  # bound on the wait for the whole output once the faults are over
    brokers: int = 1

    def scaled(self, scale: float) -> Plan:
        return replace(
            self,
            messages=round(self.messages * scale),
            assets=max(40, round(self.assets * scale)),
            engines=max(10, round(self.engines * scale)),
            catch_up_s=self.catch_up_s * max(scale, 0.2),
        )


FULL = Plan(
    messages=50_000,
    assets=400,
    engines=100,
    faults=("kill", "kill", "broker_kill", "kill", "s3_cut", "broker_cut", "kill", "kill", None),
    cut_s=20.0,
    catch_up_s=900.0,
    brokers=3,
)
SHORT = Plan(
    messages=4_000,
    assets=40,
    engines=10,
    faults=("kill", "kill", "broker_cut", "kill", "s3_cut", "kill", "kill", None),
    cut_s=10.0,
    catch_up_s=240.0,
)


def fd001_offline(ensemble: Ensemble) -> dict[str, float]:
    """`streamapp evaluate`'s prediction for each FD001 test engine at its last cycle."""
    fleet = load_cmapss(CMAPSS, "FD001", "test")
    per_engine = evaluate(ensemble, fleet, "FD001")["per_engine"]
    return {
        f"FD001-test-{int(unit):03d}": pred
        for unit, pred in zip(per_engine["unit"], per_engine["pred"], strict=True)
    }


@pytest.mark.chaos
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_chaos_run_loses_and_duplicates_nothing(
    s3_server: str, start_worker, tmp_path: Path, chaos_scale: float, summary_line
) -> None:
    run_chaos(FULL.scaled(chaos_scale), s3_server, start_worker, tmp_path, summary_line)


@pytest.mark.timeout(900)
def test_short_chaos_run_loses_and_duplicates_nothing(
    s3_server: str, start_worker, tmp_path: Path, summary_line
) -> None:
    """The CI variant (`make test`): the full run's faults, less traffic, 10 s cuts."""
    run_chaos(SHORT, s3_server, start_worker, tmp_path, summary_line)


def run_chaos(
    plan: Plan,
    s3_server: str,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    summary_line: Callable[[str], None],
) -> None:
    if not CMAPSS.exists():
        pytest.skip(f"C-MAPSS data not found at {CMAPSS}")
    started = time.monotonic()
    rng = random.Random(8)
    sim = corpus.valid_telemetry(plan.assets, plan.messages, seed=11)
    s3_port = int(s3_server.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        brokers = ProxiedBrokers(tmp_path / "brokers", plan.brokers).start()
        stack.callback(brokers.stop)
        s3_proxy = stack.enter_context(TcpProxy("127.0.0.1", s3_port))
        env = stack_env(
            brokers.bootstrap,
            f"http://127.0.0.1:{s3_proxy.port}",
            **CHAOS_ENV,
            KAFKA_REPLICATION_FACTOR=str(brokers.replication_factor),
        )
        settings = settings_from_env(env)
        direct = settings.model_copy(update={"s3_endpoint": s3_server})
        provision(direct)

        fleet = cmapss_replay.engines(CMAPSS, "FD001", "test", plan.engines, "FD001-test-")
        replay = [
            corpus.Message("valid", key, value)
            for key, value in cmapss_replay.messages(fleet, settings.window_grace)
        ]
        traffic = sim + replay
        expected = Expected.of(settings, traffic)

        workers = [start_worker(env, name=f"chaos-{i}") for i in range(2)]
        for worker in workers:  # before the broker and proxies go (callbacks run LIFO)
            stack.callback(worker.kill)
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

        chunks = len(plan.faults)
        sim_step, replay_step = -(-len(sim) // chunks), -(-len(replay) // chunks)
        kills = broker_kills = broker_cuts = 0
        killed_node = None
        consumed = [
            settings.topic_telemetry,
            settings.topic_features,
            repartition_topic_name(settings),
        ]
        for index, fault in enumerate(plan.faults):
            chunk = (
                sim[index * sim_step : (index + 1) * sim_step]
                + replay[index * replay_step : (index + 1) * replay_step]
            )
            asyncio.run(produce(settings, settings.topic_telemetry, chunk))
            time.sleep(rng.uniform(1.0, 4.0))
            supervise()
            if fault == "broker_kill" and brokers.kind == "tansu":
                fault = "broker_cut"  # a restarted Tansu has lost every record
            if fault == "kill":
                victim = rng.choice(workers)
                victim.kill()
                kills += 1
                time.sleep(rng.uniform(0.0, 2.0))
                victim.start()
            elif fault == "broker_kill":
                leaders = brokers.leaders([*consumed, settings.topic_predictions])
                killed_node = leaders.most_common(1)[0][0]
                brokers.kill(killed_node)
                broker_kills += 1
                time.sleep(rng.uniform(3.0, 8.0))
                brokers.restart(killed_node)
            elif fault == "broker_cut":
                node = 1 if brokers.size == 1 else (killed_node or 1) % brokers.size + 1
                brokers.cut(node)
                broker_cuts += 1
                time.sleep(plan.cut_s)
                brokers.restore(node)
            elif fault == "s3_cut":
                s3_proxy.cut()
                time.sleep(plan.cut_s)
                s3_proxy.restore()
        for _ in range(3):
            supervise()
            with contextlib.suppress(AssertionError, TimeoutError):
                for worker in workers:
                    worker.wait_ready(timeout=plan.catch_up_s / 3)
                break
        supervise()

        found = asyncio.run(
            collect(
                settings,
                [settings.topic_features, settings.topic_predictions],
                lambda found: Emitted.read(settings, found).reached(expected),
                timeout_s=plan.catch_up_s,
            )
        )
        deadline = time.monotonic() + 120
        while asyncio.run(group_lag(settings, consumed)) and time.monotonic() < deadline:
            time.sleep(2)
        lags = asyncio.run(partition_lag(settings, consumed))
        lag = sum(lags.values())
        if lag:
            print_stuck(lags, workers)

        asyncio.run(compact(direct, [settings.topic_telemetry]))
        report = asyncio.run(verify(direct, settings.topic_telemetry))
        inputs = (settings.topic_telemetry, settings.topic_tesla, settings.topic_features)
        dlqs = [settings.dlq_topic(name) for name in inputs]
        found_letters = asyncio.run(collect(settings, dlqs, lambda f: True, 3))
        letters = sum(len(found_letters.records[dlq]) for dlq in dlqs)
        emitted = Emitted.read(settings, found)
        lost = (
            report["missing"]["temp"]["count"]
            + report["missing"]["compressed"]["count"]
            + len(set(expected.windows) - set(emitted.windows))
            + max(0, expected.predictions - len(emitted.predictions))
        )
        duplicated = (
            report["duplicates"]["temp"]["count"] + report["duplicates"]["compressed"]["count"]
        )
        summary_line(
            f"CHAOS sent={len(traffic)} archived={report['temp_distinct_offsets']} "
            f"windows={len(emitted.windows)} predictions={len(emitted.predictions)} "
            f"dead_letters={letters} lost={lost} duplicated={duplicated} kills={kills} "
            f"brokers={brokers.size} broker_kills={broker_kills} broker_cuts={broker_cuts} "
            f"broker_cut={plan.cut_s:.0f}s s3_cut={plan.cut_s:.0f}s self_exits={exits} "
            f"lag={lag} wall={time.monotonic() - started:.0f}s"
        )

        assert kills == plan.faults.count("kill")
        if brokers.kind == "kafka":
            assert broker_kills == plan.faults.count("broker_kill")
        assert is_clean(report), report
        assert report["kafka_messages"] == len(traffic)
        assert report["compressed_rows"] == report["valid_messages"] == len(traffic)
        repeats = emitted.check(expected)
        finals = fd001_offline(load_active(MODELS / "turbofan"))
        for engine in fleet:
            if engine.asset_id not in finals:
                continue
            last = format_ts(cmapss_replay.BASE_TS_MS + len(engine.series) * cmapss_replay.CYCLE_MS)
            (final,) = {p["rul_prediction"] for p in emitted.predictions[(engine.asset_id, last)]}
            assert final == pytest.approx(finals[engine.asset_id], abs=1e-3), engine.asset_id
        assert lag == 0
        assert letters == 0
        for worker in workers:
            log = worker.log_path.read_text(errors="replace")
            for secret in SECRETS.values():
                assert secret not in log, f"a secret appears in {worker.log_path.name}"
        print(f"re-emitted predictions, all identical: {repeats}")


def print_stuck(lags: dict[str, int], workers: list[WorkerProcess]) -> None:
    """Where the consumer group is behind, and what each live worker says it has done."""
    print("\nstuck partitions:", {name: n for name, n in lags.items() if n})
    for worker in workers:
        try:
            families = scrape(worker) if worker.alive() else {}
        except OSError as exc:  # a worker stuck in a rebalance may not answer either
            print(worker.log_path.name, f"no metrics: {exc!r}")
            continue
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
