"""The models a worker serves, one per asset class, each swapped without restart when its
models/<class>/ACTIVE changes.

A new version is loaded (checksums verified) off the event loop; only when it loads
completely does it replace the one serving its class. A bad artifact is refused with an
error log and that class's previous model keeps serving; no other class is touched. A
caller of `refresh` waits for a load already in progress: the RUL agent refreshes before
its first batch, so a (re)started worker predicts its first records with the active
models instead of skipping them as if there were none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from streamapp.assets.classes import AssetClasses
from streamapp.contracts.features import FeatureRecord
from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.serving.metrics import set_model_version
from streamapp.rul.training.artifacts import (
    ArtifactError,
    active_version,
    class_folder,
    load_ensemble,
)
from streamapp.rul.training.remote import ModelBucket

log = logging.getLogger(__name__)
NO_MODEL_WARNING_INTERVAL_S = 60.0


class LiveModel:
    """Holds the serving ensemble of one class and reloads it when its ACTIVE changes."""

    def __init__(self, folder: Path, asset_class: str) -> None:
        self.folder = folder
        self.asset_class = asset_class
        self.ensemble: Ensemble | None = None
        self._tried: str | None = None
        self._last_warning = -NO_MODEL_WARNING_INTERVAL_S
        self._loading = asyncio.Lock()

    async def refresh(self) -> None:
        """Load the active version if it is new; keep the old one on any failure."""
        async with self._loading:
            version = active_version(self.folder)
            if version is None or version == self._tried:
                return
            self._tried = version
            try:
                ensemble = await asyncio.to_thread(load_ensemble, self.folder / version)
            except ArtifactError as exc:
                serving = self.ensemble.version if self.ensemble else "none"
                log.error(
                    "event=model_refused asset_class=%s version=%s serving=%s reason=%s",
                    self.asset_class,
                    version,
                    serving,
                    exc,
                )
                return
            self.ensemble = ensemble
            set_model_version(self.asset_class, ensemble.version)
            log.info(
                "event=model_loaded asset_class=%s version=%s window=%d",
                self.asset_class,
                ensemble.version,
                ensemble.window,
            )

    def warn_if_missing(self) -> None:
        """Say that this class's predictions are being skipped: once a minute at most
        while its folder has no loadable model, once only for a class with no folder (a
        class served by another agent, e.g. `ev`, or one nobody trained yet)."""
        if self.ensemble is not None:
            return
        now = time.monotonic()
        if not self.folder.is_dir():
            if self._last_warning < 0:
                self._last_warning = now
                log.info(
                    "event=no_model asset_class=%s folder=%s: no model folder for this class; "
                    "its sequences are kept, no predictions",
                    self.asset_class,
                    self.folder,
                )
            return
        if now - self._last_warning >= NO_MODEL_WARNING_INTERVAL_S:
            self._last_warning = now
            log.warning(
                "event=no_model asset_class=%s folder=%s: sequences are kept, predictions "
                "skipped until `streamapp models activate VERSION`",
                self.asset_class,
                self.folder,
            )


class LiveModels:
    """The live model of every asset class the worker knows (`ASSET_CLASSES`), and the
    classes' rules, which decide the class of a record that does not name one."""

    def __init__(
        self, models_dir: Path, classes: AssetClasses, bucket: ModelBucket | None = None
    ) -> None:
        self.models_dir = models_dir
        self.classes = classes
        self.bucket = bucket
        self.by_class = {
            name: LiveModel(class_folder(models_dir, name), name) for name in classes.classes
        }
        for name in self.by_class:
            set_model_version(name, None)

    def class_of(self, record: FeatureRecord, topic: str | None = None) -> str:
        """A feature record's class: `metadata.asset_class` (the feature agent stamps
        it), else the class rules on its asset id, topic and feature names."""
        metadata = record.raw.get("metadata")
        return self.classes.classify(
            record.asset_id,
            metadata if isinstance(metadata, dict) else None,
            topic,
            record.features,
        )

    def __getitem__(self, asset_class: str) -> LiveModel:
        return self.by_class[asset_class]

    def ensembles(self) -> dict[str, Ensemble | None]:
        """What serves each class now (a batch reads it once, so it sees one version)."""
        return {name: model.ensemble for name, model in self.by_class.items()}

    async def refresh(self) -> None:
        """Every class's model, independently: one refused artifact stops no other. With
        a bucket, the local mirror follows it first; while S3 fails, what the mirror
        holds keeps serving."""
        if self.bucket is not None:
            try:
                await self.bucket.sync(self.models_dir, self.by_class)
            except (ClientError, BotoCoreError, OSError, ArtifactError) as exc:
                log.warning("event=model_sync_failed url=%s reason=%s", self.bucket.url, exc)
        for model in self.by_class.values():
            await model.refresh()
