"""Faust's partition assignor, never a standby of a partition this worker runs.

Faust's copartitioned assignor may hand a worker a partition as active while its
previous assignment still lists it as standby (round robin assigns actives without
checking the standbys it keeps, e.g. after a SIGKILLed worker rejoins under the same
web URL). The recovery then reads that changelog partition as active and standby at
once and waits for events that never come. A partition that is active here is
therefore never also standby; its standby replica is simply absent until the next
rebalance.
"""

from __future__ import annotations

from faust.assignor import PartitionAssignor
from faust.types import TP


class ActiveFirstAssignor(PartitionAssignor):
    """Standby partitions less the active ones, wherever Faust asks."""

    def assigned_standbys(self) -> set[TP]:
        return super().assigned_standbys() - super().assigned_actives()

    def is_standby(self, tp: TP) -> bool:
        return super().is_standby(tp) and not self.is_active(tp)
