"""The README is the user's manual: its commands and settings must exist as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from streamapp.cli.main import cli
from streamapp.settings import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()
COMMAND = re.compile(r"(?:^|[`$>]\s*|^\s*)streamapp ([a-z][^`|#\n]*)", re.MULTILINE)


def shown_commands() -> list[str]:
    """Every `streamapp ...` invocation the README shows (prose like "streamapp adds" skipped)."""
    found = {match.group(1).strip() for match in COMMAND.finditer(README)}
    return sorted(line for line in found if line.split()[0] in cli.commands)


def resolve(line: str) -> tuple[click.Command, list[str]]:
    """Walk the click tree along the words of `line`; returns the command and its options."""
    command: click.Command = cli
    words = shlex.split(line.replace("[", " ").replace("]", " "))
    options = []
    for word in words:
        if word.startswith("-"):
            options.append(word.split("=")[0])
        elif isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
    return command, options


@pytest.mark.parametrize("line", shown_commands())
def test_every_command_the_readme_shows_exists_with_its_options(line: str) -> None:
    command, options = resolve(line)
    assert command is not cli, line
    known = {name for param in command.params for name in getattr(param, "opts", [])}
    known |= {name for param in command.params for name in getattr(param, "secondary_opts", [])}
    known |= {"--help", "-h"}
    assert set(options) <= known, f"{line}: unknown {sorted(set(options) - known)}"


def configuration_rows() -> dict[str, str]:
    """Variable name -> the default shown for it in the README's configuration table."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = [name.strip(" `") for name in cells[0].split(" / ")]
        defaults = [value.strip(" `") for value in cells[1].split(" / ")]
        for i, name in enumerate(names):
            rows[name] = defaults[i] if len(defaults) == len(names) else cells[1]
    return rows


def test_every_setting_is_documented_with_its_default() -> None:
    rows = configuration_rows()
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in rows]
    assert not missing, f"settings missing from the README configuration table: {missing}"
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default is None or isinstance(default, (list, tuple)) or not rows[name.upper()]:
            continue
        shown = rows[name.upper()]
        value = getattr(default, "value", default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        assert shown == str(value), f"{name.upper()}: README says {shown!r}, default is {value!r}"


def test_every_tansu_workaround_is_in_the_brokers_table() -> None:
    from streamapp.runtime.quirks import WORKAROUNDS

    section = README.split("## Brokers", 1)[1].split("\n## ", 1)[0]
    assert {w.name for w in WORKAROUNDS} <= set(re.findall(r"^\| `(\w+)` \|", section, re.M))
