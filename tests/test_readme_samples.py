"""The README's console-producer samples, run as written against a real worker: each class's
sample (turbofan telemetry with cycles, a pump's vibration telemetry, BRIEF's
extracted-features record as is) yields a prediction from its own class's model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamapp.rul.training.artifacts import active_version
from tests.conftest import CMAPSS, ROOT, settings_from_env
from tests.support.ops import read_topic, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("java") is None, reason="Kafka's console tools need Java"),
]

BIN = Path(sys.executable).parent


def readme_samples() -> list[str]:
    """The sample block's lines, its own `source` and consumer lines left out."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```bash\nsource .streamapp/dev.env")
    block = text[start : text.index("```\n", start + 8)].splitlines()[2:]
    return [line for line in block if not line.startswith(("kafka-console-consumer", "  --"))]


def test_each_class_s_sample_yields_a_prediction_of_its_model(isolated_env, start_worker) -> None:
    if not (BIN / "kafka-console-producer").exists():
        pytest.fail("kafka-console-producer is missing: `make` installs it")
    env = {**isolated_env, "MODELS_DIR": str(ROOT / "models")}
    settings = settings_from_env(env)
    worker = start_worker(env)
    worker.wait_ready()
    script = "\n".join(readme_samples())
    # The same lines, on this test's own topics and the C-MAPSS copy the suite uses.
    script = script.replace("produce telemetry", 'produce "$TOPIC_TELEMETRY"')
    script = script.replace("produce extracted-features", 'produce "$TOPIC_FEATURES"')
    script = script.replace("../shared/data/cmapss", str(CMAPSS))
    shell_env = {**os.environ, **env, "PATH": f"{BIN}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    wanted = {
        "FD001-test-001": ("turbofan", active_version(ROOT / "models" / "turbofan")),
        "PUMP-42": ("rotating", active_version(ROOT / "models" / "rotating")),
        "ASSET001": ("rotating", active_version(ROOT / "models" / "rotating")),
    }

    def served() -> dict[str, tuple[str, str]] | None:
        found = {}
        for record in read_topic(env, settings.topic_predictions, idle_timeout=2.0):
            prediction = json.loads(record.value)
            found[prediction["asset_id"]] = (prediction["asset_class"], prediction["model_version"])
        return found if set(wanted) <= set(found) else None

    assert wait_for(served, 90, "a prediction for each README sample") == wanted
