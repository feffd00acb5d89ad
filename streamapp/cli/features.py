"""Feature commands: `bench_features` (named `features` on the `bench` group)."""

from __future__ import annotations

import click

from streamapp.cli.options import echo_json


@click.command("features")
@click.option("--messages", default=200_000, show_default=True, help="Messages to send.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
def bench_features(messages: int, as_json: bool) -> None:
    """Feature-extraction throughput vs plain aiokafka on a private embedded broker."""
    from streamapp.features.bench import bench_features as run_bench

    result = run_bench(messages)
    if as_json:
        echo_json(result)
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")
