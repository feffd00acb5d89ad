"""Archive commands: the `archive` group (`compact`, `verify`) and `bench_archive`.

The lead registers `archive` on the root group and `bench_archive` (named `archive`)
on the `bench` group.
"""

from __future__ import annotations

import click

from streamapp.cli.options import echo_json, message_bench, run_async
from streamapp.settings import get_settings


@click.group("archive")
def archive() -> None:
    """The S3 archive: compaction of closed hours and audits against Kafka."""


@archive.command("compact")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Topic to compact (default: every archived topic: telemetry, Tesla, battery).",
)
@click.option("--hour", help="Only this hour, as YYYY-MM-DDTHH (UTC).")
def compact(topics: tuple[str, ...], hour: str | None) -> None:
    """Compact closed hours into zstd Parquet and apply temp retention; prints JSON."""
    from streamapp.archive.compaction import archived_topics
    from streamapp.archive.compaction import compact as run_compaction
    from streamapp.archive.records import parse_hour_label

    settings = get_settings()
    try:
        only_hour = parse_hour_label(hour) if hour else None
    except ValueError as exc:
        raise click.BadParameter("expected YYYY-MM-DDTHH", param_hint="--hour") from exc
    chosen = list(topics) or list(archived_topics(settings))
    reports = run_async(run_compaction(settings, chosen, only_hour))
    echo_json([report.as_dict() for report in reports])


@archive.command("verify")
@click.option("--topic", required=True, help="Topic to audit.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def verify(topic: str, as_json: bool) -> None:
    """Compare Kafka offsets with the temp and compressed layers; exit 1 if not clean."""
    from streamapp.archive.verify import is_clean
    from streamapp.archive.verify import verify as run_verify

    report = run_async(run_verify(get_settings(), topic))
    if as_json:
        echo_json(report)
    else:
        click.echo(f"topic {topic}")
        click.echo(f"  messages in Kafka:      {report['kafka_messages']}")
        click.echo(f"  messages in temp:       {report['temp_messages']}")
        click.echo(f"  rows in compressed:     {report['compressed_rows']}")
        click.echo(f"  invalid (not in rows):  {report['invalid_messages']}")
        click.echo(f"  pending compaction:     {report['pending_compaction']}")
        for kind in ("missing", "duplicates"):
            for layer in ("temp", "compressed"):
                found = report[kind][layer]
                first = ", ".join(f"{p}:{o}" for p, o in found["first"])
                click.echo(
                    f"  {kind} in {layer}: {found['count']}" + (f" ({first})" if first else "")
                )
    if not is_clean(report):
        raise SystemExit(1)


bench_archive = message_bench(
    "archive",
    100_000,
    "Archive throughput vs plain aiokafka on a private embedded stack.",
    "streamapp.archive.bench:bench_archive",
)
