"""Versioned model artifacts: models/<class>/<version>/ with a sha256 manifest, and
models/<class>/ACTIVE.

Each asset class has its own folder of versions and its own active pointer, so a class's
model is trained, activated and rolled back without touching another's; the functions
below take that folder (`class_folder`).

A version directory holds one `<member>.pt` state_dict per network (loaded with
`torch.load(weights_only=True)`, so no pickled code ever runs), `ensemble.json` (feature names,
window, cap, scaler, weights, network hyper-parameters), `conformal.json`, `metrics.json` and
`manifest.json`, which lists the sha256 of every other file. Loading checks every checksum
and refuses a missing, extra-tampered or altered file before anything is deserialised.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from streamapp.rul.serving.ensemble import Ensemble, MemberInput
from streamapp.rul.training.conformal import Conformal
from streamapp.rul.training.data import Scaler
from streamapp.rul.training.networks import build_model

MANIFEST = "manifest.json"
ACTIVE = "ACTIVE"
FORMAT = 1
MAX_VERSION_CHARS = 128
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ArtifactError(RuntimeError):
    """A model version that must not be served (missing, altered or malformed files)."""


class InvalidVersion(ArtifactError):
    """A name that cannot be a version directory; refused before any filesystem call."""


class UnknownVersion(ArtifactError):
    """A well-formed name with no version directory behind it."""


def check_version_name(version: str) -> None:
    """Raise InvalidVersion unless `version` is a short, plain directory name.

    Checked before the name reaches the filesystem: a path separator or `..` would
    leave models/, and a name longer than the system takes fails with an OSError.
    """
    if len(version) > MAX_VERSION_CHARS:
        raise InvalidVersion(f"invalid version name: longer than {MAX_VERSION_CHARS} characters")
    if not VERSION_RE.fullmatch(version):
        raise InvalidVersion(
            f"invalid version name {version[:64]!r}: letters, digits, '.', '_' and '-' "
            "only, starting with a letter or digit"
        )


def class_folder(models_dir: Path | str, asset_class: str) -> Path:
    """The folder of one class's versions and ACTIVE pointer (name checked as a version's)."""
    try:
        check_version_name(asset_class)
    except InvalidVersion as exc:
        raise InvalidVersion(str(exc).replace("version name", "asset class name")) from None
    return Path(models_dir) / asset_class


def model_classes(models_dir: Path | str) -> list[str]:
    """The classes with a folder under `models_dir` holding versions or ACTIVE, sorted."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and VERSION_RE.fullmatch(p.name)
        and ((p / ACTIVE).is_file() or list_versions(p))
    )


class AmbiguousVersion(ArtifactError):
    """A version name found in the folders of several classes: the class must be named."""


def class_of_version(models_dir: Path | str, version: str) -> str:
    """The one class whose folder holds `version`; UnknownVersion if none,
    AmbiguousVersion if several (version names are meant to be unique)."""
    check_version_name(version)
    holding = [c for c in model_classes(models_dir) if (Path(models_dir) / c / version).is_dir()]
    return only_class(version, holding, str(models_dir))


def only_class(version: str, holding: list[str], where: str) -> str:
    """The one class of `holding` (those that hold `version` in `where`), or the error."""
    if not holding:
        raise UnknownVersion(f"no version {version} in any class of {where}")
    if len(holding) > 1:
        raise AmbiguousVersion(
            f"version {version} is in several classes ({', '.join(holding)}): name the class"
        )
    return holding[0]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _state_bytes(model: torch.nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def save_ensemble(ens: Ensemble, models_dir: Path | str, version: str | None = None) -> Path:
    """Write `ens` as a new version directory; the version name ends with a content hash."""
    files: dict[str, bytes] = {f"{k}.pt": _state_bytes(m) for k, m in ens.models.items()}
    files["ensemble.json"] = _json_bytes(
        {
            "format": FORMAT,
            "feature_names": ens.feature_names,
            "window": ens.window,
            "cap": ens.cap,
            "members": list(ens.models),
            "weights": ens.weights,
            "hparams": ens.hparams,
            "scaler": ens.scaler.to_dict(),
            "inputs": {
                name: {
                    "window": view.window,
                    "scaler": view.scaler.to_dict(),
                    "smoothing": view.smoothing,
                }
                for name, view in ens.inputs.items()
            },
        }
    )
    files["conformal.json"] = _json_bytes(
        {
            "ensemble": ens.conformal.to_dict(),
            "members": {k: c.to_dict() for k, c in ens.member_conformal.items()},
        }
    )
    files["metrics.json"] = _json_bytes(ens.metrics)
    digests = {name: sha256_bytes(data) for name, data in sorted(files.items())}
    if version is None:
        content = sha256_bytes(_json_bytes(digests))[:8]
        subset = str(ens.metrics.get("subset", "rul")).lower()
        version = f"{subset}-{datetime.now(UTC):%Y-%m-%d}-{content}"
    check_version_name(version)
    target = Path(models_dir) / version
    if target.exists():
        raise ArtifactError(f"version {version} already exists in {models_dir}")
    tmp = Path(models_dir) / f".{version}.tmp"
    tmp.mkdir(parents=True)
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    manifest = {"version": version, "format": FORMAT, "files": digests}
    (tmp / MANIFEST).write_bytes(_json_bytes(manifest))
    os.replace(tmp, target)
    ens.version = version
    return target


def verified_files(path: Path | str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Manifest and the bytes of every listed file, after checking each sha256."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_bytes())
        listed = dict(manifest["files"])
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no {MANIFEST}; not a model version directory") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ArtifactError(f"{path}/{MANIFEST} is malformed: {err}") from None
    contents = {}
    for name, digest in listed.items():
        if Path(name).name != name:
            raise ArtifactError(f"{path}/{MANIFEST} lists a path outside the version: {name}")
        try:
            data = (path / name).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"{path}: file {name} listed in {MANIFEST} is missing") from None
        actual = sha256_bytes(data)
        if actual != digest:
            raise ArtifactError(
                f"{path}/{name}: checksum mismatch (manifest {digest[:12]}..., "
                f"file {actual[:12]}...); refusing to load a modified artifact"
            )
        contents[name] = data
    return manifest, contents


def load_ensemble(path: Path | str) -> Ensemble:
    """Load a version directory after verifying every checksum; raises ArtifactError."""
    path = Path(path)
    manifest, files = verified_files(path)
    try:
        meta = json.loads(files["ensemble.json"])
        conf = json.loads(files["conformal.json"])
        models = {}
        for name in meta["members"]:
            model = build_model(name, len(meta["scaler"]["input_names"]), meta["hparams"][name])
            state = torch.load(io.BytesIO(files[f"{name}.pt"]), weights_only=True)
            model.load_state_dict(state)
            models[name] = model.eval()
        return Ensemble(
            version=manifest.get("version", path.name),
            models=models,
            weights={k: float(v) for k, v in meta["weights"].items()},
            scaler=Scaler.from_dict(meta["scaler"]),
            window=int(meta["window"]),
            cap=float(meta["cap"]),
            conformal=Conformal.from_dict(conf["ensemble"]),
            member_conformal={k: Conformal.from_dict(v) for k, v in conf["members"].items()},
            hparams=meta["hparams"],
            metrics=json.loads(files["metrics.json"]),
            inputs={
                name: MemberInput(
                    int(view["window"]),
                    Scaler.from_dict(view["scaler"]),
                    float(view.get("smoothing", 0.0)),
                )
                for name, view in meta.get("inputs", {}).items()
            },
        )
    except KeyError as err:
        raise ArtifactError(f"{path}: artifact lacks {err.args[0]!r}") from None
    except (ValueError, RuntimeError) as err:
        raise ArtifactError(f"{path}: cannot load artifact: {err}") from None


def list_versions(models_dir: Path | str) -> list[str]:
    """Version directories (those with a manifest), sorted by name."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if (p / MANIFEST).is_file() and not p.name.startswith(".")
    )


def active_version(models_dir: Path | str) -> str | None:
    """The version named by models/ACTIVE, or None when no model is active."""
    try:
        name = (Path(models_dir) / ACTIVE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def activate(models_dir: Path | str, version: str) -> Ensemble:
    """Verify `version` loads, then point models/ACTIVE at it (atomic rename).

    Raises InvalidVersion, UnknownVersion or ArtifactError for the version, and OSError
    when models/ cannot be read or written (a read-only mount: EROFS).
    """
    check_version_name(version)
    root = Path(models_dir)
    if not (root / version).is_dir():
        raise UnknownVersion(f"no version {version} in {root} (have: {list_versions(root)})")
    ens = load_ensemble(root / version)
    _atomic_write(root / ACTIVE, f"{version}\n".encode())
    return ens


def load_active(models_dir: Path | str) -> Ensemble:
    """The active ensemble; ArtifactError when none is active or it fails verification."""
    version = active_version(models_dir)
    if version is None:
        raise ArtifactError(f"no active model: {Path(models_dir) / ACTIVE} is missing or empty")
    try:
        check_version_name(version)
    except InvalidVersion:
        raise ArtifactError(
            f"{Path(models_dir) / ACTIVE} names an invalid version {version[:64]!r}"
        ) from None
    return load_ensemble(Path(models_dir) / version)


def read_metrics(models_dir: Path | str, version: str) -> dict[str, Any] | None:
    """A version's metrics.json (training figures), None when missing or unreadable."""
    try:
        return json.loads((Path(models_dir) / version / "metrics.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
