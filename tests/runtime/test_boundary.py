"""The runtime boundary: only `streamapp/runtime/` reaches into Faust, mode or aiokafka.

Outside it, code imports those libraries' public modules only and touches no private
attribute (`obj._name`) of any object but its own (`self`, `cls`); so a Faust or
aiokafka upgrade can only break `runtime/`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "streamapp"
RUNTIME = PACKAGE / "runtime"
LIBRARIES = ("faust", "mode", "aiokafka")
PUBLIC_MODULES = frozenset(
    {
        "faust",
        "faust.web",
        "faust.web.exceptions",
        "faust.sensors",
        "faust.types",
        "faust.types.transports",
        "aiokafka",
        "aiokafka.admin",
        "aiokafka.errors",
        "aiokafka.structs",
    }
)


def violations(source: str) -> list[str]:
    """Each reach into a library's internals or another object's private attribute."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            names: list[str] = []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules, names = [node.module], [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if private and not own:
                found.append(f"line {node.lineno}: private attribute .{node.attr}")
            continue
        else:
            continue
        for module in modules:
            if module.split(".")[0] not in LIBRARIES:
                continue
            if module not in PUBLIC_MODULES:
                found.append(f"line {node.lineno}: imports {module}")
            found += [f"line {node.lineno}: imports {module}.{n}" for n in names if n[0] == "_"]
    return found


def outside_runtime() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if RUNTIME not in p.parents)


def test_nothing_outside_runtime_reaches_into_faust_or_aiokafka() -> None:
    found = {
        str(path.relative_to(PACKAGE.parent)): problems
        for path in outside_runtime()
        if (problems := violations(path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize(
    "source",
    [
        "db = table.data._db_for_partition(0)",
        "consumer._committed_offset.get(tp)",
        "from faust.stores.rocksdb import Store",
        "from faust.streams import _current_event",
        "import aiokafka.consumer.fetcher",
        "from faust.types import _private_thing",
    ],
)
def test_the_rule_catches_a_reach_into_internals(source: str) -> None:
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "import faust\napp = faust.App('x')",
        "from faust.web import View",
        "from aiokafka import AIOKafkaConsumer",
        "self._cache = {}",
        "cls._instances.clear()",
        "from streamapp.runtime.tables import read",
    ],
)
def test_the_rule_allows_public_use_and_own_attributes(source: str) -> None:
    assert violations(source) == []
