"""Windows: assignment, per-asset state, closing and emission. Pure: no Kafka here.

`kinds` holds the window kinds (tumbling, hopping, cycle), one class each behind
`Windows`; `state` the table value and its codec; `extractor` the batch logic;
`emission` the features of closed windows.

Windows are per asset and driven by that asset's own event time: its watermark is the
largest `ts` it has applied. Replaying an asset's records in offset order therefore
reproduces the same state, the same late records and the same emissions, whatever
the batching, the worker or the wall clock (a per-partition watermark would close an
asset's windows at a point that depends on how other assets' records interleave).

Only silence is judged on the partition's clock, so that the table forgets assets
that stopped reporting: `stream_ms`, the largest `ts` of the records of the asset's
partition up to and including the record at hand. An asset *expires* once that clock
reaches its watermark + the idle timeout: its open windows are emitted as they are
and its state is deleted. Nothing of it is kept, so lateness must not need it: a record
is also late when its earliest window starts at or before the *horizon*, the clock
minus the idle timeout (for cycle windows: when its `ts` is at or before it). Every
window an expired asset emitted starts at or before its watermark, which is at or
before the horizon from then on, so no later record can reopen one. Both rules are
decided per record on the clock as it stood at that record, and an asset expiring at
the end of a batch has no later record in it, so the emissions and late records do not
depend on the batching either.

Each record updates exactly one *pane*: the window itself for tumbling windows, a
slice of gcd(size, step) for hopping windows (a hopping window merges its panes when
it closes, so a record costs one update however many windows overlap it), or its
cycle for cycle windows. A time window [start, end) closes when the watermark reaches
end + grace; a record whose earliest window has closed is late and is applied to no
window. A cycle window closes when a later cycle has been seen and the watermark
reaches the cycle's last timestamp + grace; a record of a closed cycle is late.
"""

from streamapp.features.windows.emission import Emission
from streamapp.features.windows.extractor import (
    DIRECT,
    BatchResult,
    FeatureExtractor,
    Profile,
    Record,
)
from streamapp.features.windows.kinds import (
    LATE,
    NO_CYCLE,
    CycleWindows,
    HoppingWindows,
    TumblingWindows,
    WindowKind,
    Windows,
    build_windows,
)
from streamapp.features.windows.state import AssetState, Pane

__all__ = [
    "DIRECT",
    "LATE",
    "NO_CYCLE",
    "AssetState",
    "BatchResult",
    "CycleWindows",
    "Emission",
    "FeatureExtractor",
    "HoppingWindows",
    "Pane",
    "Profile",
    "Record",
    "TumblingWindows",
    "WindowKind",
    "Windows",
    "build_windows",
]
