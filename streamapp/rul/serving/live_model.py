"""The model a worker serves, swapped without restart when models/ACTIVE changes.

A new version is loaded (checksums verified) off the event loop; only when it
loads completely does it replace the serving one. A bad artifact is refused with
an error log and the previous model keeps serving. A caller of `refresh` waits for a
load already in progress: the RUL agent refreshes before its first batch, so a
(re)started worker predicts its first records with the active model instead of
skipping them as if there were none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.serving.metrics import set_model_version
from streamapp.rul.training.artifacts import ArtifactError, active_version, load_ensemble

log = logging.getLogger(__name__)
NO_MODEL_WARNING_INTERVAL_S = 60.0


class LiveModel:
    """Holds the serving ensemble of one worker and reloads it when ACTIVE changes."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self.ensemble: Ensemble | None = None
        self._tried: str | None = None
        self._last_warning = -NO_MODEL_WARNING_INTERVAL_S
        self._loading = asyncio.Lock()

    async def refresh(self) -> None:
        """Load the active version if it is new; keep the old one on any failure."""
        async with self._loading:
            version = active_version(self.models_dir)
            if version is None or version == self._tried:
                return
            self._tried = version
            try:
                ensemble = await asyncio.to_thread(load_ensemble, self.models_dir / version)
            except ArtifactError as exc:
                serving = self.ensemble.version if self.ensemble else "none"
                log.error(
                    "event=model_refused version=%s serving=%s reason=%s", version, serving, exc
                )
                return
            self.ensemble = ensemble
            set_model_version(ensemble.version)
            log.info("event=model_loaded version=%s window=%d", ensemble.version, ensemble.window)

    def warn_if_missing(self) -> None:
        """Once a minute at most: say that predictions are being skipped."""
        now = time.monotonic()
        if self.ensemble is None and now - self._last_warning >= NO_MODEL_WARNING_INTERVAL_S:
            self._last_warning = now
            log.warning(
                "event=no_model models_dir=%s: sequences are kept, predictions skipped until "
                "`streamapp models activate VERSION`",
                self.models_dir,
            )
