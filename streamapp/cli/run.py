"""`streamapp run` (what `make run` calls): the whole product on the embedded stack.

It starts what is not running (broker, S3, a worker, the simulator), shows a live
summary read from the worker's own /metrics and fleet API every second (counters, then
the assets with the lowest predicted RUL and their intervals), and on Ctrl-C or after
`--duration` seconds stops exactly what it started. It trains nothing: the worker
serves each class's model named by `models/<class>/ACTIVE` (a trained FD001 ensemble
ships for `turbofan`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click
from prometheus_client.parser import text_string_to_metric_families

from streamapp.rul.training.artifacts import active_version, model_classes
from streamapp.settings import configure, get_settings

# (label shown, metric family, label filter) of the live summary.
SUMMARY_COUNTERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("telemetry in", "streamapp_ingest_messages", {"topic": "telemetry"}),
    ("tesla in", "streamapp_ingest_messages", {"topic": "tesla_V"}),
    ("dead letters", "streamapp_dead_letters", {}),
    ("archived", "streamapp_archive_messages", {}),
    ("windows", "streamapp_feature_windows_emitted", {}),
    ("predictions", "streamapp_rul_predictions", {}),
)
LAG_METRIC = "streamapp_consumer_lag_messages"
URGENT_SHOWN = 3


@dataclass(slots=True)
class Started:
    """Processes this run started and must stop."""

    processes: list[subprocess.Popen]
    stack_started: bool


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples per metric family name from a Prometheus text endpoint ({} if down)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = [
            (sample.labels, sample.value)
            for sample in family.samples
            if not sample.name.endswith("_created")
        ]
    return families


def total(samples: list[tuple[dict[str, str], float]], match: dict[str, str]) -> float:
    return sum(
        value
        for labels, value in samples
        if all(labels.get(key) == wanted for key, wanted in match.items())
    )


def fleet(base_url: str, count: int = URGENT_SHOWN) -> dict:
    """The worker's fleet API: the assets with the lowest predicted RUL and the assets per
    class ({} while the worker does not answer)."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/v1/fleet?limit={count}", timeout=2) as r:
            found = json.loads(r.read())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def prediction_text(asset: dict) -> str:
    """`ENGINE-0003 (turbofan) RUL 42 [28-57]`: an asset's latest prediction, its interval."""
    text = f"{asset['asset_id']}"
    if asset.get("asset_class"):
        text += f" ({asset['asset_class']})"
    text += f" RUL {asset['rul']:.0f}"
    if asset.get("lower") is not None and asset.get("upper") is not None:
        text += f" [{asset['lower']:.0f}-{asset['upper']:.0f}]"
    return text


def summary_line(
    families: dict[str, list[tuple[dict[str, str], float]]],
    elapsed: float,
    fleet_now: dict | None = None,
) -> str:
    if not families:
        return f"[{elapsed:5.0f}s] worker starting..."
    parts = [f"[{elapsed:5.0f}s]"]
    for label, name, match in SUMMARY_COUNTERS:
        if name in families:
            parts.append(f"{label}={total(families[name], match):,.0f}")
    if LAG_METRIC in families:
        parts.append(f"lag={total(families[LAG_METRIC], {}):,.0f}")
    classes = (fleet_now or {}).get("classes") or {}
    if classes:
        parts.append("| " + " ".join(f"{name}={count}" for name, count in classes.items()))
    urgent = ((fleet_now or {}).get("assets") or [])[:URGENT_SHOWN]
    if urgent:
        parts.append("| lowest RUL: " + ", ".join(prediction_text(a) for a in urgent))
    evs = (fleet_now or {}).get("evs") or []
    worn = [ev for ev in evs if isinstance(ev.get("soh"), int | float)][:URGENT_SHOWN]
    if worn:
        parts.append("| lowest SoH: " + ", ".join(f"{ev['vin']} {ev['soh']:.1f}%" for ev in worn))
    return "  ".join(parts)


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "streamapp", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def _stop(started: Started) -> None:
    from streamapp.dev.stack import DevStack, stop_process

    for process in reversed(started.processes):
        if process.poll() is None:
            stop_process(process.pid, timeout=15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    if started.stack_started:
        DevStack().down()


@click.command()
@click.option(
    "--duration", default=0.0, show_default=True, help="Seconds to run; 0 runs until Ctrl-C."
)
@click.option(
    "--assets", default=20, show_default=True, help="Simulated assets (of --kind, in turn)."
)
@click.option("--rate", default=200.0, show_default=True, help="Simulated messages per second.")
@click.option(
    "--invalid-fraction",
    default=0.02,
    show_default=True,
    help="Share of malformed messages, to show the dead-letter queue at work.",
)
@click.option("--web-port", default=6066, show_default=True, help="Worker web port.")
@click.option(
    "--kind",
    type=click.Choice(["mixed", "engine", "rotating", "ev"]),
    default="mixed",
    show_default=True,
    help="The simulated fleet: engines, pumps and EVs in turn, or one kind (each asset's "
    "class, from ASSET_CLASSES, picks its windows and model).",
)
def run(
    duration: float,
    assets: int,
    rate: float,
    invalid_fraction: float,
    web_port: int,
    kind: str,
) -> None:
    """Run the product on the embedded stack with a simulated fleet and a live summary."""
    from streamapp.dev.stack import DevStack, StackError

    stack = DevStack()
    stack_started = not all(stack.status().values())
    settings = get_settings()
    try:
        env = stack.up(Path("topics.yaml"), settings.streamapp_broker, settings.kafka_jars_cache)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    settings = configure()
    models_dir = settings.models_dir
    served = {name: active_version(models_dir / name) for name in model_classes(models_dir)}
    logs = stack.log_dir
    # Tansu keeps its data in memory, so table state left by an earlier stack names
    # changelog offsets the new broker never had: on Tansu each new stack starts clean.
    # Apache Kafka keeps its log, and the table state with it.
    table_state = stack.state_dir / "run-data"
    if stack_started and stack.info().get("broker") == "tansu":
        shutil.rmtree(table_state, ignore_errors=True)
    started = Started([], stack_started)
    try:
        started.processes.append(
            _spawn(
                ["worker", "--web-port", str(web_port)],
                logs / "worker.log",
                {"DATA_DIR": str(table_state)},
            )
        )
        started.processes.append(
            _spawn(
                [
                    "simulate",
                    "--assets",
                    str(assets),
                    "--rate",
                    str(rate),
                    "--duration",
                    "0",
                    "--invalid-fraction",
                    str(invalid_fraction),
                    "--seed",
                    "1",
                    "--kind",
                    kind,
                ],
                logs / "simulator.log",
            )
        )
        base = f"http://127.0.0.1:{web_port}"
        info = stack.info()
        broker = "Apache Kafka" if info.get("broker") == "kafka" else "Tansu"
        click.echo(
            f"broker {broker} {info.get('version')} at {env.kafka_bootstrap_servers}   "
            f"S3 {env.s3_endpoint}"
        )
        if info.get("fallback"):
            click.echo(f"note: {info['fallback']}")
        click.echo(f"fleet page {base}/   metrics {base}/metrics   logs {logs}/")
        click.echo(
            "models "
            + ", ".join(f"{name} {version or 'none active'}" for name, version in served.items())
            if served
            else f"no models in {settings.models_dir}: predictions are skipped until "
            "`streamapp models activate VERSION`"
        )
        click.echo(
            "Ctrl-C to stop" + (f" (stops by itself after {duration:.0f}s)" if duration else "")
        )
        began = time.monotonic()
        interactive = sys.stdout.isatty()
        while not duration or time.monotonic() - began < duration:
            if started.processes[0].poll() is not None:
                raise click.ClickException(f"the worker exited; see {logs / 'worker.log'}")
            line = summary_line(scrape(f"{base}/metrics"), time.monotonic() - began, fleet(base))
            click.echo(("\r\033[K" + line) if interactive else line, nl=not interactive)
            time.sleep(1.0)
        click.echo("")
        click.echo(summary_line(scrape(f"{base}/metrics"), time.monotonic() - began, fleet(base)))
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        _stop(started)
    click.echo("stopped everything this run started")
