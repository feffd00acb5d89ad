"""Helpers shared by CLI commands."""

from __future__ import annotations

import asyncio
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
