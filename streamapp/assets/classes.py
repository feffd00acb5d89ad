"""Asset classes and the declarative rules that assign one to every record.

A fleet mixes kinds of assets; a class decides an asset's windows, its features and the
model that serves it. The classes and rules are data (`classes.yaml`, versioned in the
repository, or the file `ASSET_CLASSES` names): a record names its class in
`metadata.asset_class`, or the first matching rule decides, or the default class does.
Nothing here dead-letters: an unknown asset is served as the default class.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml

from streamapp.features.windows import WindowKind

PACKAGED = Path(__file__).with_name("classes.yaml")
#: One class for every asset, windowed by the WINDOW_* settings.
UNIFORM = Path(__file__).with_name("uniform.yaml")
#: The window shape of a class whose `windows` is `settings`: the WINDOW_* settings.
FROM_SETTINGS = "settings"
_KINDS = get_args(WindowKind)
_RULE_KEYS = {"class", "asset_id", "topic", "names_any", "names_all", "cycle"}


@dataclass(frozen=True, slots=True)
class WindowShape:
    """A class's windows in seconds, as the WINDOW_* settings give them."""

    kind: WindowKind
    size_s: float
    step_s: float | None
    grace_s: float
    idle_s: float | None


@dataclass(frozen=True, slots=True)
class AssetClass:
    """One class: its windows (None: the WINDOW_* settings), which signals and features it
    windows (empty: all), and the signal whose features are named bare."""

    name: str
    description: str
    windows: WindowShape | None
    signals: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    bare_signal: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches when every condition it has holds (`asset_id` is a full-match regex)."""

    asset_class: str
    asset_id: re.Pattern[str] | None = None
    topic: str | None = None
    names_any: frozenset[str] = frozenset()
    names_all: frozenset[str] = frozenset()
    cycle: bool | None = None  # True: only records that carry a cycle number

    def matches(
        self, asset_id: str, topic: str | None, names: Iterable[str], cycle: bool | None = None
    ) -> bool:
        """`cycle`: whether the record carries a cycle (None, unknown: not checked)."""
        if self.asset_id is not None and not self.asset_id.fullmatch(asset_id):
            return False
        if self.cycle is not None and cycle is not None and cycle != self.cycle:
            return False
        if self.topic is not None and topic != self.topic:
            return False
        if self.names_any or self.names_all:
            present = set(names)
            if self.names_any and not self.names_any & present:
                return False
            if self.names_all and not self.names_all <= present:
                return False
        return True


@dataclass(frozen=True, slots=True)
class AssetClasses:
    """The classes, the rules in order, the default class and the file's version."""

    classes: Mapping[str, AssetClass]
    rules: tuple[Rule, ...]
    default: str
    version: int
    source: str = field(default="", compare=False)

    @classmethod
    def load(cls, path: Path | None = None) -> AssetClasses:
        """Read and check a classes file (None: the shipped one); every mistake is a
        ValueError naming the file."""
        path = path or PACKAGED
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read asset classes: {exc}") from exc
        try:
            return cls.parse(document, str(path))
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def parse(cls, document: Any, source: str = "") -> AssetClasses:
        if not isinstance(document, dict):
            raise ValueError("the document must be a mapping")
        classes = {
            name: _asset_class(name, spec) for name, spec in (document["classes"] or {}).items()
        }
        if not classes:
            raise ValueError("no classes declared")
        default = str(document["default"])
        if default not in classes:
            raise ValueError(f"default class {default!r} is not declared")
        rules = tuple(_rule(spec, classes) for spec in document.get("rules") or ())
        return cls(classes, rules, default, int(document["version"]), source)

    def __getitem__(self, name: str) -> AssetClass:
        return self.classes[name]

    def classify(
        self,
        asset_id: str,
        metadata: Mapping[str, Any] | None = None,
        topic: str | None = None,
        names: Iterable[str] = (),
        cycle: bool | None = None,
    ) -> str:
        """The class of a record: `metadata.asset_class` if it names a class, else the
        first matching rule's, else the default. `topic` is the record's source topic,
        `names` its signal or feature names."""
        named = (metadata or {}).get("asset_class")
        if isinstance(named, str) and named in self.classes:
            return named
        names = tuple(names)
        for rule in self.rules:
            if rule.matches(asset_id, topic, names, cycle):
                return rule.asset_class
        return self.default


def _asset_class(name: str, spec: Mapping[str, Any]) -> AssetClass:
    unknown = set(spec) - {"description", "windows", "signals", "features", "bare_signal"}
    if unknown:
        raise ValueError(f"class {name}: unknown keys {sorted(unknown)}")
    windows = spec["windows"]
    shape = None
    if windows != FROM_SETTINGS:
        kind = windows["kind"]
        if kind not in _KINDS:
            raise ValueError(f"class {name}: window kind {kind!r} is not one of {_KINDS}")
        idle = windows.get("idle_s")
        shape = WindowShape(
            kind,
            float(windows["size_s"]),
            None if windows.get("step_s") is None else float(windows["step_s"]),
            float(windows.get("grace_s", 0)),
            None if idle is None else float(idle),
        )
    return AssetClass(
        name,
        str(spec.get("description", "")),
        shape,
        tuple(spec.get("signals") or ()),
        tuple(spec.get("features") or ()),
        spec.get("bare_signal"),
    )


def _rule(spec: Mapping[str, Any], classes: Mapping[str, AssetClass]) -> Rule:
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise ValueError(f"rule {dict(spec)}: unknown keys {sorted(unknown)}")
    name = spec["class"]
    if name not in classes:
        raise ValueError(f"rule {dict(spec)}: class {name!r} is not declared")
    pattern = spec.get("asset_id")
    return Rule(
        name,
        re.compile(pattern) if pattern is not None else None,
        spec.get("topic"),
        frozenset(spec.get("names_any") or ()),
        frozenset(spec.get("names_all") or ()),
        None if spec.get("cycle") is None else bool(spec["cycle"]),
    )
