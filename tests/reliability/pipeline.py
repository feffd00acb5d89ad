"""What the hostile-input and chaos runs share: pipeline settings, the expected output and
how what the workers emitted is read back and judged against it.

Both runs drive real workers on a real broker and S3 server; both accept only the feature
windows and predictions that a fault-free pipeline computes offline from the valid input
(`expected.py`), every re-emission identical to the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streamapp.features.agent import extractor_from
from streamapp.rul.training.artifacts import load_active
from streamapp.settings import Settings
from tests.conftest import ROOT
from tests.reliability.corpus import Message
from tests.reliability.expected import (
    check_identical_repeats,
    check_predictions,
    check_windows,
    expected_predictions,
    expected_windows,
    telemetry_records,
)
from tests.reliability.traffic import Collected, predictions_of, windows_of
from tests.support.classes import TURBOFANS

MODELS = ROOT / "models"
# One class (the WINDOW_* settings) for every asset: each suite sets the windows it tests.
PIPELINE_ENV = {
    "ASSET_CLASSES": str(TURBOFANS),
    "WINDOW_GRACE": "2",
    "FEATURE_BATCH_WITHIN_S": "0.2",
    "MODELS_DIR": str(MODELS),
}


@dataclass
class Expected:
    """The fault-free output of some valid input: its windows and how many predictions."""

    windows: dict[tuple[str, str], Any]
    predictions: int

    @classmethod
    def of(
        cls, settings: Settings, telemetry: Iterable[Message], tesla: Iterable[Message] = ()
    ) -> Expected:
        """One prediction per window (`dataclasses.replace` the count where that differs)."""
        windows = expected_windows(
            extractor_from(settings).profiles["turbofan"].windows,
            telemetry_records(telemetry, tesla, settings.max_payload_bytes),
        )
        return cls(windows, len(windows))


@dataclass
class Emitted:
    """What the workers published: feature windows and predictions, each by (asset, end)."""

    settings: Settings
    features: list[bytes]
    windows: dict[tuple[str, str], set[bytes]]
    predictions: dict[tuple[str, str], list[dict[str, Any]]]

    @classmethod
    def read(cls, settings: Settings, found: Collected) -> Emitted:
        features = found.values(settings.topic_features)
        return cls(
            settings,
            features,
            windows_of(features),
            predictions_of(found.values(settings.topic_predictions)),
        )

    def reached(self, expected: Expected) -> bool:
        """Enough to judge: as many windows and predictions as expected (maybe wrong ones)."""
        return (
            len(self.windows) >= len(expected.windows)
            and len(self.predictions) >= expected.predictions
        )

    def check(self, expected: Expected) -> int:
        """Windows equal the offline ones; one prediction per window equal to the offline
        ensemble's, every re-emission identical to the first; returns the re-emissions."""
        check_windows(self.windows, expected.windows)
        repeats = check_identical_repeats(self.predictions)
        check_predictions(
            self.predictions,
            expected_predictions(
                load_active(MODELS / "turbofan"), self.features, self.settings.max_payload_bytes
            ),
        )
        return repeats
