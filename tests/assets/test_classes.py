"""Asset classes: the shipped rules, the precedence of metadata, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamapp.assets.classes import AssetClasses

CLASSES = AssetClasses.load()


@pytest.mark.parametrize(
    ("asset_id", "metadata", "topic", "names", "expected"),
    [
        ("ENGINE-0001", None, None, ["s2", "s3"], "turbofan"),
        ("FD001-test-007", None, None, ["s2"], "turbofan"),
        ("5YJ3E1EA7KF000001", None, None, ["soc"], "ev"),
        ("car-1", None, "tesla_V", ["Soc"], "ev"),
        ("PUMP-07", None, None, ["vibration"], "rotating"),
        ("ASSET001", None, None, ["rms", "kurtosis", "crest_factor"], "rotating"),
        ("line-3", None, None, ["vibration", "temperature"], "rotating"),
        ("rig-9", None, None, ["s2", "s3", "s4", "s7"], "turbofan"),
        ("something-else", None, None, ["x"], "generic"),
        ("ENGINE-0001", {"asset_class": "rotating"}, None, ["s2"], "rotating"),
        # A class the file does not declare is ignored, not trusted.
        ("ENGINE-0001", {"asset_class": "spaceship"}, None, ["s2"], "turbofan"),
    ],
)
def test_the_shipped_rules(
    asset_id: str, metadata: dict | None, topic: str | None, names: list[str], expected: str
) -> None:
    assert CLASSES.classify(asset_id, metadata, topic, names) == expected


def test_every_shipped_class_but_the_default_has_its_own_windows() -> None:
    assert CLASSES.default == "generic"
    assert CLASSES["generic"].windows is None
    assert CLASSES["turbofan"].windows is not None and CLASSES["turbofan"].windows.kind == "cycle"
    assert CLASSES["rotating"].bare_signal == "vibration"
    assert {"turbofan", "rotating", "ev", "generic"} <= set(CLASSES.classes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\ndefault: a\nclasses: {}\n", "no classes"),
        ("version: 1\ndefault: b\nclasses: {a: {windows: settings}}\n", "default class 'b'"),
        (
            "version: 1\ndefault: a\nclasses: {a: {windows: settings}}\nrules: [{class: z}]\n",
            "class 'z' is not declared",
        ),
        (
            "version: 1\ndefault: a\nclasses: {a: {windows: {kind: sliding, size_s: 1}}}\n",
            "window kind 'sliding'",
        ),
        (
            "version: 1\ndefault: a\nclasses: {a: {windows: settings}}\n"
            "rules: [{class: a, colour: red}]\n",
            "unknown keys ['colour']",
        ),
        ("[", "cannot read"),
    ],
)
def test_a_bad_classes_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        AssetClasses.load(path)
    assert str(path) in str(err.value)


def test_an_engine_without_a_cycle_is_left_to_the_default_class() -> None:
    """Cycle windows would refuse every record of it; the default windows take them."""
    assert CLASSES.classify("ENGINE-0001", None, "telemetry", ["s2"], cycle=True) == "turbofan"
    assert CLASSES.classify("ENGINE-0001", None, "telemetry", ["s2"], cycle=False) == "generic"
    assert CLASSES.classify("ENGINE-0001", None, None, ["s2_mean"]) == "turbofan"  # unknown
