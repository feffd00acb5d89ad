"""Helpers shared by CLI commands."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a CLI command, turning Ctrl-C into a clean exit."""
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        raise click.Abort() from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True, default=str))


def message_bench(name: str, default_messages: int, summary: str, runner: str) -> click.Command:
    """A `bench NAME [--messages N] [--json]` command printing the dict `runner(N)` returns.

    `runner` is "module:function", imported only when the command runs (benches pull in
    Faust, torch or the embedded stack, which `streamapp --help` should not load).
    """

    @click.command(name, help=summary)
    @click.option(
        "--messages", default=default_messages, show_default=True, help="Messages to send."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
    def command(messages: int, as_json: bool) -> None:
        module, function = runner.split(":")
        try:
            result = getattr(importlib.import_module(module), function)(messages)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        if as_json:
            echo_json(result)
        else:
            for key, value in result.items():
                click.echo(f"{key}: {value}")

    return command
