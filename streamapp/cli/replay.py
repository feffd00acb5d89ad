"""`streamapp replay`: C-MAPSS engines through the live pipeline, optionally scored."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from streamapp.cli.options import echo_json, run_async
from streamapp.settings import Settings, get_settings


async def collect_finals(
    settings: Settings, last_cycles: dict[str, int], timeout_s: float, progress: Any
) -> dict[str, dict[str, Any]]:
    """The prediction of each engine's last cycle, read from the predictions topic."""
    from streamapp.runtime.clients import consume

    finals: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(finals) < len(last_cycles) and time.monotonic() < deadline:
        async for record in consume(settings, settings.topic_predictions, True, None, 2.0):
            asset_id = (record.key or b"").decode("utf-8", "replace")
            if asset_id not in last_cycles:
                continue
            prediction = json.loads(record.value or b"{}")
            if prediction.get("metadata", {}).get("cycle") == last_cycles[asset_id]:
                finals[asset_id] = prediction
        progress(len(finals))
        if len(finals) < len(last_cycles):
            await asyncio.sleep(2.0)
    return finals


@click.command()
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory with C-MAPSS files.",
)
@click.option("--subset", default="FD001", show_default=True)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    help="Cycles (messages) per second; 0 sends as fast as the broker takes them.",
)
@click.option("--units", type=int, help="Replay only the first N engines.")
@click.option("--asset-prefix", help="Prefix of the asset ids (default: '<SUBSET>-<split>-').")
@click.option(
    "--score",
    "do_score",
    is_flag=True,
    help="Wait for every engine's final prediction and score them.",
)
@click.option("--cap", default=125.0, show_default=True, help="Cap of the true RUL when scoring.")
@click.option(
    "--timeout", default=600.0, show_default=True, help="Seconds to wait for final predictions."
)
@click.option("--json", "as_json", is_flag=True, help="Print the score as one JSON object.")
@click.option(
    "--print-only",
    is_flag=True,
    help="Print the records as KEY|VALUE lines instead of sending them (for "
    "kafka-console-producer --property parse.key=true --property key.separator='|').",
)
def replay(
    data: Path,
    subset: str,
    split: str,
    rate: float,
    units: int | None,
    asset_prefix: str | None,
    do_score: bool,
    cap: float,
    timeout: float,
    as_json: bool,
    print_only: bool,
) -> None:
    """Produce C-MAPSS engines as telemetry (run the worker with WINDOW_KIND=cycle)."""
    from streamapp.rul.training import replay as cmapss_replay
    from streamapp.sim.pacing import send_paced

    settings = get_settings()
    prefix = asset_prefix if asset_prefix is not None else f"{subset.upper()}-{split}-"
    fleet = cmapss_replay.engines(data, subset, split, units, prefix)
    total = sum(len(engine.series) + 1 for engine in fleet)
    if print_only:
        out = click.get_binary_stream("stdout")
        for key, value in cmapss_replay.messages(fleet, settings.window_grace):
            out.write(key + b"|" + value + b"\n")
        return

    def sent_progress(sent: int) -> None:
        if sys.stderr.isatty():
            click.echo(f"\rsent {sent}/{total}", nl=False, err=True)

    sent = run_async(
        send_paced(
            settings,
            settings.topic_telemetry,
            cmapss_replay.messages(fleet, settings.window_grace),
            rate,
            None,
            sent_progress,
        )
    )
    click.echo(
        f"\nsent {sent} records for {len(fleet)} engines (including one end-of-data marker each)",
        err=True,
    )
    if not do_score:
        return

    def final_progress(found: int) -> None:
        click.echo(f"final predictions {found}/{len(fleet)}", err=True)

    finals = run_async(
        collect_finals(settings, cmapss_replay.final_cycles(fleet), timeout, final_progress)
    )
    result = cmapss_replay.score(fleet, finals, cap)
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"engines {result['predicted']}/{result['engines']}  RMSE {result['rmse']:.3f}"
            f"  PHM08 {result['score']:.1f}  coverage {result['coverage']:.3f}  "
            f"({result['protocol']})"
        )
    if result["predicted"] < result["engines"]:
        raise click.ClickException(
            f"only {result['predicted']} of {result['engines']} engines "
            f"got a final prediction within {timeout:.0f}s"
        )
