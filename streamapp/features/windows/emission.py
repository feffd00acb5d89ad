"""Closed windows -> `extracted-features` records: the features a window yields, encoded."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streamapp.contracts.features import encode_features
from streamapp.features import accumulators as acc_ops
from streamapp.features.windows.kinds import ClosedWindow, WindowKind

EMIT_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class Emission:
    """One `extracted-features` record, ready to send, and when its window closed."""

    asset_id: str
    window_end_ms: float
    value: bytes
    closed_at_ms: float


class Emitter:
    """Encodes closed windows as `<signal>_<feature>` records; `features`: which ones.

    The features of `bare_signal` are named bare (`rms`, not `vibration_rms`), as the
    vibration feature services of a rotating fleet publish them; `asset_class`, when
    set, is stamped in each record's metadata for the RUL agent.
    """

    def __init__(
        self,
        kind: WindowKind,
        features: tuple[str, ...],
        asset_class: str | None = None,
        bare_signal: str | None = None,
    ) -> None:
        self.kind = kind
        self.features = features
        self.asset_class = asset_class
        self.bare_signal = bare_signal
        self._keys: dict[str, list[str]] = {}

    def emit(self, closed: list[ClosedWindow]) -> list[Emission]:
        """The records of the closed windows, in closing order.

        The features of the rows of up to EMIT_CHUNK windows come from one vectorised
        pass: each is elementwise, so a row's values do not depend on what it is stacked
        with, and the chunks bound the Python floats alive at once (a batch may close
        tens of thousands of windows).
        """
        emissions: list[Emission] = []
        for start in range(0, len(closed), EMIT_CHUNK):
            emissions += self._emit_chunk(closed[start : start + EMIT_CHUNK])
        return emissions

    def _emit_chunk(self, closed: list[ClosedWindow]) -> list[Emission]:
        values = acc_ops.features(np.concatenate([window.acc for window in closed]))
        columns = [(feature, values[feature].tolist()) for feature in self.features]
        counts = values["count"].tolist()
        isfinite = math.isfinite
        emissions = []
        first_row = 0
        for window in closed:
            names = window.names
            features: dict[str, float | int | None] = {}
            for row in sorted(range(len(names)), key=names.__getitem__):
                index = first_row + row
                if counts[index] == 0:
                    continue
                keys = self._feature_keys(names[row])
                for (feature, column), key in zip(columns, keys, strict=True):
                    number = column[index]
                    if feature == "count":
                        features[key] = int(number)
                    else:
                        features[key] = number if isfinite(number) else None
            first_row += len(names)
            value = encode_features(
                window.asset_id,
                features,
                window.start,
                window.end,
                window.count,
                self.kind,
                window.cycle,
                self.asset_class,
            )
            emissions.append(Emission(window.asset_id, window.end, value, window.closed_at_ms))
        return emissions

    def _feature_keys(self, name: str) -> list[str]:
        """`<signal>_<feature>` for each emitted feature, built once per signal."""
        keys = self._keys.get(name)
        if keys is None:
            if name == self.bare_signal:
                keys = self._keys[name] = list(self.features)
            else:
                keys = self._keys[name] = [f"{name}_{feature}" for feature in self.features]
        return keys
