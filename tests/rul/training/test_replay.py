"""FD001 test set through a running worker: the live pipeline equals offline `evaluate`.

telemetry -> cycle windows -> extracted-features -> sequences -> ensemble -> rul-predictions,
on the embedded stack with the shipped model. The second test SIGKILLs the worker while it
is working through the replay, restarts it on the same state directory, and still gets
exactly one final prediction per engine, equal to the offline one, and every step of
every engine predicted from the same history as offline.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streamapp.cli.rul import evaluate as evaluate_cmd
from streamapp.rul.training import replay as cmapss_replay
from streamapp.rul.training.artifacts import load_active
from streamapp.rul.training.data import load_cmapss, sequence_windows
from streamapp.rul.training.evaluate import evaluate
from streamapp.sim.pacing import send_paced
from tests.conftest import CMAPSS, ROOT, settings_from_env
from tests.support.ops import counter_total, read_topic, scrape, wait_for

pytestmark = pytest.mark.integration

DATA = CMAPSS
MODELS = ROOT / "models"
PREFIX = "FD001-test-"
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def offline() -> dict[str, Any]:
    """`streamapp evaluate` of the shipped model: per-engine predictions and the RMSE it prints."""
    if not (DATA / "test_FD001.txt").exists():
        pytest.skip(f"C-MAPSS FD001 not found in {DATA}")
    result = CliRunner().invoke(
        evaluate_cmd, ["--data", str(DATA), "--models-dir", str(MODELS), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    test = load_cmapss(DATA, "FD001", "test")
    per_engine = evaluate(load_active(MODELS / "turbofan"), test, "FD001")
    units = per_engine["per_engine"]["unit"]
    preds = per_engine["per_engine"]["pred"]
    return {
        "rmse": printed["models"]["ensemble"]["rmse"],
        "pred": {f"{PREFIX}{int(u):03d}": p for u, p in zip(units, preds, strict=True)},
    }


@pytest.fixture(scope="module")
def offline_steps() -> dict[str, list[float]]:
    """The shipped model's prediction at every cycle of every FD001 test engine, offline:
    a step predicted from a damaged history (a row lost, doubled or stale) differs."""
    if not (DATA / "test_FD001.txt").exists():
        pytest.skip(f"C-MAPSS FD001 not found in {DATA}")
    ensemble = load_active(MODELS / "turbofan")
    fleet = load_cmapss(DATA, "FD001", "test").columns(ensemble.feature_names)
    return {
        f"{PREFIX}{int(unit):03d}": ensemble.predict(
            sequence_windows(s, ensemble.window)
        ).rul.tolist()
        for unit, s in zip(fleet.units, fleet.series, strict=True)
    }


def worker_env(isolated_env: dict[str, str]) -> dict[str, str]:
    """The shipped asset classes: FD001-* engines are turbofans, on cycle windows."""
    return {**isolated_env, "MODELS_DIR": str(MODELS)}


def finals_on_topic(env: dict[str, str], last: dict[str, int]) -> dict[str, list[dict]]:
    """Every prediction of an engine's last observed cycle found on the predictions topic."""
    found: dict[str, list[dict]] = defaultdict(list)
    for record in read_topic(env, env["TOPIC_PREDICTIONS"], idle_timeout=2.0):
        prediction = json.loads(record.value)
        asset = prediction["asset_id"]
        assert record.key == asset.encode()
        if prediction["metadata"].get("cycle") == last.get(asset):
            found[asset].append(prediction)
    return found


def assert_matches_offline(finals: dict[str, list[dict]], offline: dict[str, Any]) -> None:
    assert sorted(finals) == sorted(offline["pred"]), "engines without a final prediction"
    for asset, predictions in finals.items():
        assert len(predictions) == 1, f"{asset}: {len(predictions)} final predictions"
        got = predictions[0]["rul_prediction"]
        assert abs(got - offline["pred"][asset]) <= TOLERANCE, (asset, got, offline["pred"][asset])


@pytest.mark.tansu
def test_fd001_replay_through_a_worker_equals_offline_evaluate(
    isolated_env, start_worker, offline, tmp_path: Path
) -> None:
    env = worker_env(isolated_env)
    worker = start_worker(env)
    worker.wait_ready()
    # `streamapp replay --score --json` exactly as a user runs it, against the same stack.
    replay = subprocess.run(
        [sys.executable, "-m", "streamapp", "replay", "--data", str(DATA), "--subset", "FD001",
         "--split", "test", "--score", "--json", "--timeout", "300"],
        env={**os.environ, **env}, capture_output=True, timeout=420, cwd=tmp_path,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr.decode()[-3000:] + worker.log_tail()
    scored = json.loads(replay.stdout)
    assert scored["predicted"] == scored["engines"] == 100
    assert abs(scored["rmse"] - offline["rmse"]) <= TOLERANCE
    assert 0 < scored["coverage"] <= 1

    fleet = cmapss_replay.engines(DATA, "FD001", "test", None, PREFIX)
    finals = finals_on_topic(env, cmapss_replay.final_cycles(fleet))
    assert_matches_offline(finals, offline)
    active = load_active(MODELS / "turbofan")
    for final, *_ in finals.values():
        assert final["model_version"] == active.version
        assert final["sequence_length"] == active.window
        assert final["metadata"]["padded"] is (final["metadata"]["history"] < active.window)
    assert {final["metadata"]["padded"] for final, *_ in finals.values()} == {True, False}


def test_sigkill_mid_replay_then_restart_gives_one_final_prediction_per_engine(
    isolated_env, start_worker, offline, offline_steps
) -> None:
    env = worker_env(isolated_env)
    settings = settings_from_env(env)
    fleet = cmapss_replay.engines(DATA, "FD001", "test", None, PREFIX)
    last = cmapss_replay.final_cycles(fleet)
    messages = cmapss_replay.messages(fleet, settings.window_grace)
    # The shortest engine has 31 cycles: the first 25 rounds (2,500 records) close no engine,
    # so every final prediction is made after the crash and must appear exactly once.
    first = list(itertools.islice(messages, 25 * len(fleet)))
    worker = start_worker(env)
    worker.wait_ready()

    def predictions_so_far() -> float:
        return counter_total(scrape(worker), "streamapp_rul_predictions")

    # Paced so the kill lands while the worker is in the middle of its work.
    sent_first = asyncio.run(
        send_paced(settings, settings.topic_telemetry, iter(first), 1000.0, None)
    )
    assert sent_first == len(first)
    wait_for(lambda: predictions_so_far() >= 300, 120, "predictions before the kill", every=0.1)
    worker.kill()

    restarted = start_worker(env, name="restarted", data_dir=worker.data_dir)
    rest = asyncio.run(send_paced(settings, settings.topic_telemetry, messages, 0.0, None))
    assert rest > 0
    restarted.wait_ready()

    def all_finals() -> dict[str, list[dict]] | None:
        finals = finals_on_topic(env, last)
        return finals if len(finals) == len(fleet) else None

    wait_for(all_finals, 300, "a final prediction of every engine", every=3.0)
    assert_matches_offline(finals_on_topic(env, last), offline)

    # At least once, and every copy of a step re-published after the crash is the same
    # record byte for byte (its stored bytes are re-sent, measured latency included);
    # every step, not only the last, predicted from the history offline sees.
    by_step: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    wrong: list[tuple[str, int, float, float]] = []
    for record in read_topic(env, env["TOPIC_PREDICTIONS"], idle_timeout=2.0):
        prediction = json.loads(record.value)
        asset, cycle = step = (prediction["asset_id"], prediction["metadata"]["cycle"])
        by_step[step].add(record.value)
        expected = offline_steps[asset][cycle - 1]
        if abs(prediction["rul_prediction"] - expected) > TOLERANCE:
            wrong.append((asset, cycle, prediction["rul_prediction"], expected))
    assert all(len(copies) == 1 for copies in by_step.values())
    steps = {(asset, cycle) for asset, final in last.items() for cycle in range(1, final + 1)}
    missing = sorted(steps - set(by_step))
    assert not missing, f"{len(missing)} steps without a prediction, first {missing[:10]}"
    assert not wrong, f"{len(wrong)} steps predicted from a damaged history, first {wrong[:5]}"
