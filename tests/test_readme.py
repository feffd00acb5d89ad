"""The README is the user's manual, docs/ the engineering record: their commands, settings
and links must exist as written, and the manual stays short and free of commit hashes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from streamapp.cli.main import cli
from streamapp.settings import Settings

ROOT = Path(__file__).parents[1]
README_PATH = ROOT / "README.md"
README = README_PATH.read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README_PATH, *DOCS]
MAX_README_LINES = 500
COMMAND = re.compile(r"(?:^|[`$>]\s*|^\s*)streamapp ([a-z][^`|#\n]*)", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A word of 7-40 hex digits with a digit and a letter, not a part of a longer name
# (`fd001-2026-11-22-f797a1d3` is a model version, not a commit).
HEX_WORD = re.compile(r"(?<![\w./-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w/-])")


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def shown_commands(text: str) -> list[str]:
    """Every `streamapp ...` invocation a page shows (prose like "streamapp adds" skipped)."""
    found = {match.group(1).strip() for match in COMMAND.finditer(text)}
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


SHOWN = sorted(
    {(page_id(path), line) for path in PAGES for line in shown_commands(path.read_text())}
)


@pytest.mark.parametrize(("page", "line"), SHOWN)
def test_every_command_a_page_shows_exists_with_its_options(page: str, line: str) -> None:
    command, options = resolve(line)
    assert command is not cli, f"{page}: {line}"
    known = {name for param in command.params for name in getattr(param, "opts", [])}
    known |= {name for param in command.params for name in getattr(param, "secondary_opts", [])}
    known |= {"--help", "-h"}
    assert set(options) <= known, f"{page}: {line}: unknown {sorted(set(options) - known)}"


def test_the_readme_and_every_docs_page_show_commands() -> None:
    pages = {page for page, _ in SHOWN}
    assert {"README.md", "docs/benchmarks.md", "docs/models.md"} <= pages


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

    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("\n## Brokers", 1)[1].split("\n## ", 1)[0]
    assert {w.name for w in WORKAROUNDS} <= set(re.findall(r"^\| `(\w+)` \|", section, re.M))


def prose(text: str) -> str:
    """The page without its fenced code blocks (their `#` lines are comments, not headings)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(path.read_text()), re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", prose(path.read_text()))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_relative_link_points_to_an_existing_file_and_heading(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and anchor not in anchors(linked):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page_id(path)}: {broken}"


def test_every_docs_page_is_in_the_docs_index_and_the_index_in_the_readme() -> None:
    index = ROOT / "docs" / "README.md"
    listed = {
        (index.parent / target.partition("#")[0]).resolve() for target in relative_links(index)
    }
    assert {page.resolve() for page in DOCS if page != index} <= listed
    assert "docs/README.md" in relative_links(README_PATH)


def test_the_readme_is_a_manual_of_at_most_500_lines() -> None:
    lines = README.count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move depth to docs/"


def test_the_readme_mentions_no_commit_hash() -> None:
    found = HEX_WORD.findall(README)
    assert not found, f"commit hashes belong in docs/, not the manual: {found}"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("measured at f5c678c from a fresh clone", ["f5c678c"]),
        ("| 13f2777 | 64 MiB |", ["13f2777"]),
        ("model `fd001-2026-11-22-f797a1d3`", []),
        ("`ROCKSDB_MEMORY_BYTES` `67108864`, deadbeefcafe, docs/img/ab12cd34.png", []),
    ],
)
def test_commit_hashes_are_told_from_version_ids(text: str, found: list[str]) -> None:
    assert HEX_WORD.findall(text) == found
