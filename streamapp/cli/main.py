"""`streamapp`: the worker, the embedded stack, topics, producing, reading, simulating."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import cast

import click

from streamapp.cli.options import echo_json, run_async
from streamapp.contracts.deadletter import parse_headers
from streamapp.observability.logs import configure_logging
from streamapp.settings import configure, get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
@click.option("--bootstrap-servers", help="Kafka bootstrap servers (KAFKA_BOOTSTRAP_SERVERS).")
def cli(verbose: bool, bootstrap_servers: str | None) -> None:
    """Fleet predictive maintenance on Kafka: archive, features, RUL predictions."""
    configure_logging(verbose)
    configure(kafka_bootstrap_servers=bootstrap_servers)


@cli.command("config")
def show_config() -> None:
    """Print the effective settings (secrets masked) as JSON."""
    echo_json(get_settings().public_dict())


# --- embedded stack -------------------------------------------------------------
@cli.group()
def dev() -> None:
    """The embedded stack: Apache Kafka (or Tansu) and a moto S3 server on loopback."""


@dev.command("up")
@click.option(
    "--topics-file",
    type=click.Path(path_type=Path),
    default=Path("topics.yaml"),
    show_default=True,
    help="Topics to create.",
)
@click.option(
    "--broker",
    type=click.Choice(["kafka", "tansu"]),
    help="Broker to run (STREAMAPP_BROKER; default kafka, or tansu without Java/Maven).",
)
@click.option(
    "--brokers",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    help="Apache Kafka nodes (KRaft broker+controller each); 3 gives replication 3.",
)
def dev_up(topics_file: Path, broker: str | None, brokers: int) -> None:
    """Start the broker and S3 server, create bucket and topics, write .streamapp/dev.env.

    Apache Kafka keeps its log in .streamapp/broker between `dev down` and `dev up`.
    """
    from streamapp.dev.stack import DevStack, StackError

    settings = get_settings()
    stack = DevStack()
    try:
        env = stack.up(
            topics_file if topics_file.exists() else None,
            broker or settings.streamapp_broker,  # type: ignore[arg-type]
            settings.kafka_jars_cache,
            brokers,
        )
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    for key, value in env.as_env().items():
        shown = "**********" if key in ("S3_KEY", "S3_SECRET") else value
        click.echo(f"{key}={shown}")
    info = stack.info()
    if info.get("fallback"):
        click.echo(f"note: {info['fallback']}", err=True)
    click.echo(
        f"broker: {_broker_name(info)} ({info.get('brokers')} node(s), ready in "
        f"{info.get('ready_s')} s); written to .streamapp/dev.env (S3 credentials included)",
        err=True,
    )


def _broker_name(info: dict[str, object]) -> str:
    kind = {"kafka": "Apache Kafka", "tansu": "Tansu"}.get(str(info.get("broker")), "unknown")
    return f"{kind} {info.get('version', '')}".strip()


@dev.command("down")
@click.option(
    "--wipe",
    is_flag=True,
    help="Also delete the broker's log and the workers' local state (DATA_DIR) together.",
)
def dev_down(wipe: bool) -> None:
    """Stop exactly the processes `dev up` started; does nothing when none runs."""
    from streamapp.dev.stack import DevStack

    stopped = DevStack().down(wipe=wipe, data_dir=get_settings().data_dir)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    if wipe:
        click.echo("wiped the broker's log and the workers' local state")


@dev.command("status")
def dev_status() -> None:
    """Show the broker kind and version, and whether each part of the stack runs."""
    from streamapp.dev.stack import DevStack

    stack = DevStack()
    env = stack.read_env()
    info = stack.info()
    click.echo(f"broker: {_broker_name(info)}" if info else "broker: never started")
    for name, pid in stack.status().items():
        where = env.get("S3_ENDPOINT" if name == "s3" else "KAFKA_BOOTSTRAP_SERVERS", "")
        click.echo(f"{name}: {'running pid ' + str(pid) + ' ' + where if pid else 'stopped'}")


@dev.command("tools")
@click.option(
    "--bin-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(sys.executable).parent,
    show_default=True,
    help="Where to write the wrappers.",
)
def dev_tools(bin_dir: Path) -> None:
    """Install Kafka's console tools (kafka-console-producer, -consumer, kafka-topics,
    kafka-consumer-groups) as wrappers over the embedded Kafka's jars."""
    from streamapp.dev import kafka
    from streamapp.dev.stack import StackError

    settings = get_settings()
    try:
        kafka.ensure_jars(settings.kafka_jars_cache)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    kafka.install_tools(bin_dir, settings.kafka_jars_cache, click.echo)


# --- topics ---------------------------------------------------------------------
@cli.group()
def topics() -> None:
    """Declarative topics from topics.yaml."""


@topics.command("apply")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, path_type=Path),
    default=Path("topics.yaml"),
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def topics_apply(path: Path, as_json: bool) -> None:
    """Create missing topics, grow partitions where co-partitioning allows, report drift.

    Never deletes, shrinks or alters configs; a refused growth says why.
    """
    from streamapp.runtime import topics as kafka_topics

    settings = get_settings()
    try:
        specs = kafka_topics.load_specs(path, settings)
    except kafka_topics.TopicsFileError as exc:
        raise click.ClickException(str(exc)) from exc
    report = run_async(kafka_topics.apply(settings, specs))
    if as_json:
        echo_json(report.as_dict())
        return
    for name in report.created:
        click.echo(f"created   {name}")
    for name in report.unchanged:
        click.echo(f"ok        {name}")
    for line in report.grown:
        click.echo(f"grown     {line}")
    for line in report.refused:
        click.echo(f"REFUSED   {line}")
    for line in report.drift:
        click.echo(f"DRIFT     {line}")


@topics.command("list")
def topics_list() -> None:
    """Topics the broker has, with partition counts."""
    from streamapp.runtime import topics as kafka_topics

    for name, partitions in sorted(run_async(kafka_topics.describe(get_settings())).items()):
        click.echo(f"{name}\t{partitions}")


# --- worker ---------------------------------------------------------------------
@cli.command(context_settings={"ignore_unknown_options": False})
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
@click.option("--auto-offset-reset", type=click.Choice(["earliest", "latest"]))
@click.option("--web-port", type=int, help="Port of /metrics, health and the fleet page.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Local table state.")
@click.option("--buffer-size", type=int, help="Archive: messages per partition per flush.")
@click.option("--buffer-max-bytes", type=int, help="Archive: bytes per partition per flush.")
@click.option("--buffer-flush-interval", type=float, help="Archive: seconds between flushes.")
@click.option("--worker-buffer-max-bytes", type=int, help="Archive: cap on buffered bytes.")
@click.option("--compression-interval", type=float, help="Archive: seconds between compactions.")
@click.option("--temp-retention", type=float, help="Archive: age (s) of deletable temp objects.")
def worker(verbose: bool, **flags: object) -> None:
    """Run a Faust worker with every agent (the same as `faust -A streamapp.app worker`)."""
    settings = configure(**flags)
    from streamapp.runtime.worker import run_worker

    run_worker("debug" if verbose else "info", settings.web_host, settings.web_port)


# --- producing and reading ------------------------------------------------------
@cli.command()
@click.option("--topic", required=True, help="Topic to write to.")
@click.option(
    "--file",
    "source",
    type=click.File("rb"),
    default="-",
    show_default=True,
    help="JSON lines to send; - is standard input.",
)
@click.option("--key", help="Key of every record (default: each record's asset_id).")
def produce(topic: str, source: click.utils.LazyFile, key: str | None) -> None:
    """Send one record per line (malformed lines are sent too: the worker dead-letters them)."""
    from streamapp.runtime.clients import produce_lines

    sent = run_async(produce_lines(get_settings(), topic, iter(source), key))
    click.echo(f"sent {sent} records to {topic}", err=True)


@cli.command()
@click.option("--topic", required=True, help="Topic to read.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record.")
@click.option("--max", "max_records", type=int, help="Stop after this many records.")
@click.option("--idle-timeout", type=float, help="Stop after this many seconds without data.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per record with its key, headers and coordinates.",
)
def consume(
    topic: str,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout: float | None,
    as_json: bool,
) -> None:
    """Print records of a topic (no consumer group: reading disturbs nobody)."""
    from streamapp.runtime.clients import consume as consume_records

    async def show() -> None:
        async for record in consume_records(
            get_settings(), topic, from_beginning, max_records, idle_timeout
        ):
            value = (record.value or b"").decode("utf-8", "replace")
            if not as_json:
                click.echo(value)
                continue
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
            echo_json(
                {
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "timestamp": record.timestamp,
                    "key": None if record.key is None else record.key.decode("utf-8", "replace"),
                    "headers": parse_headers(list(record.headers)),
                    "value": decoded,
                }
            )

    run_async(show())


# --- simulator ------------------------------------------------------------------
@cli.command()
@click.option("--assets", default=20, show_default=True, help="Number of engines or vehicles.")
@click.option(
    "--rate",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Messages per second; 0 sends as fast as the broker takes them.",
)
@click.option("--duration", default=60.0, show_default=True, help="Seconds; 0 runs forever.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same messages.")
@click.option(
    "--invalid-fraction",
    default=0.0,
    show_default=True,
    help="Share of deliberately malformed messages (for the DLQ).",
)
@click.option(
    "--kind",
    type=click.Choice(["engine", "ev", "rotating", "mixed"]),
    default="engine",
    show_default=True,
    help="mixed: engines, pumps and EVs in turn.",
)
@click.option(
    "--regimes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 3),
    help="Engine operating regimes (1 like FD001, 3 like FD002).",
)
@click.option(
    "--topic",
    help="Target topic (default: the telemetry topic; the Tesla topic for --protocol tesla).",
)
@click.option("--start-ms", type=float, help="Event time of the first tick (default: now).")
@click.option(
    "--tick-ms",
    type=click.FloatRange(min=0, min_open=True),
    help="Event time between one asset's records (default: real time, 1000 * assets / rate, "
    "as if 1,000 msgs/s at --rate 0); set it to replay faster than real time.",
)
@click.option(
    "--run-to-failure",
    is_flag=True,
    help="Each engine and pump runs one life to failure, then stops (training data).",
)
@click.option(
    "--days",
    default=730,
    show_default=True,
    type=click.IntRange(min=1),
    help="Days of event time each EV lives (its records then stop); EVs keep their own "
    "event time, so days pass in minutes.",
)
@click.option(
    "--protocol",
    type=click.Choice(["generic", "tesla"]),
    default="generic",
    show_default=True,
    help="EVs only (--kind ev): BRIEF's telemetry JSON on the telemetry topic, or Tesla "
    "fleet-telemetry protojson on the Tesla topic.",
)
def simulate(
    assets: int,
    rate: float,
    duration: float,
    seed: int,
    invalid_fraction: float,
    kind: str,
    regimes: int,
    topic: str | None,
    start_ms: float | None,
    tick_ms: float | None,
    run_to_failure: bool,
    days: int,
    protocol: str,
) -> None:
    """Produce degradation telemetry for a simulated fleet of engines, pumps or EVs.

    EVs (`--kind ev`, and a third of a mixed fleet) drive, charge and age with a known
    battery fade (streamapp/sim/ev.py)."""
    import time

    from streamapp.sim import ev
    from streamapp.sim.fleet import Kind, Simulation, messages
    from streamapp.sim.pacing import send_paced

    settings = get_settings()
    if protocol == "tesla" and kind != "ev":
        raise click.UsageError("--protocol tesla needs --kind ev")
    first_ms = start_ms if start_ms is not None else time.time() * 1000.0
    if protocol == "tesla":
        pairs = ev.messages(ev.EvFleet(assets, days, seed, first_ms, "tesla"))
        default_topic = settings.topic_tesla
    else:
        sim = Simulation(
            assets,
            cast(Kind, kind),
            seed,
            invalid_fraction,
            first_ms,
            interval_ms=tick_ms if tick_ms is not None else 1000.0 * assets / (rate or 1000.0),
            regimes=regimes,
            run_to_failure=run_to_failure,
            ev_days=days,
        )
        pairs = messages(sim)
        default_topic = settings.topic_telemetry

    def progress(sent: int) -> None:
        if sys.stderr.isatty():
            click.echo(f"\rsent {sent}", nl=False, err=True)

    sent = run_async(
        send_paced(
            settings,
            topic or default_topic,
            pairs,
            rate,
            duration or None,
            progress,
        )
    )
    click.echo(f"\nsent {sent} messages", err=True)


def _register_concepts() -> None:
    """Commands owned by each concept's own CLI module."""
    from streamapp.cli import archive as archive_module
    from streamapp.cli import features as features_module
    from streamapp.cli import replay as replay_module
    from streamapp.cli import rul as rul_module
    from streamapp.cli import run as run_module

    cli.add_command(run_module.run)
    cli.add_command(replay_module.replay)
    cli.add_command(rul_module.train)
    cli.add_command(rul_module.evaluate)
    cli.add_command(rul_module.screen)
    cli.add_command(rul_module.models)
    cli.add_command(archive_module.archive)
    bench.add_command(rul_module.bench_inference, "inference")
    bench.add_command(rul_module.bench_rul, "rul")
    bench.add_command(archive_module.bench_archive, "archive")
    bench.add_command(features_module.bench_features, "features")


@cli.group()
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Benchmarks printing JSON: archive, features, inference, rul."""
    if not ctx.find_root().params.get("verbose"):
        # The in-process workers' INFO lines (partitions opened, stores closed) are
        # noise beside a benchmark's figures; --verbose shows everything.
        logging.getLogger("streamapp").setLevel(logging.WARNING)


_register_concepts()
