"""Every command answers --help (users find their way without the README)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from streamapp.cli.main import cli


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*prefix, name)))
    return found


def test_every_command_has_help() -> None:
    runner = CliRunner()
    commands = all_commands(cli)
    assert {
        ("worker",),
        ("produce",),
        ("consume",),
        ("simulate",),
        ("run",),
        ("dev", "up"),
        ("topics", "apply"),
    } <= set(commands)
    for path in commands:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_config_masks_secrets(monkeypatch) -> None:
    monkeypatch.setenv("S3_SECRET", "do-not-print")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0
    assert "do-not-print" not in result.output and "s3_secret" in result.output
