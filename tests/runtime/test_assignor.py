"""A partition that is active on this worker is never also its standby."""

from __future__ import annotations

from faust.assignor.client_assignment import ClientAssignment
from faust.types import TP

from streamapp.runtime.assignor import ActiveFirstAssignor
from streamapp.settings import Settings


def test_a_partition_both_active_and_standby_counts_as_active_only() -> None:
    from streamapp.app import create_app

    app = create_app(Settings(_env_file=None))
    assignor = app.assignor
    assert isinstance(assignor, ActiveFirstAssignor)
    changelog = "streamapp-feature-windows-changelog"
    assignor._assignment = ClientAssignment(
        actives={changelog: [1, 2]}, standbys={changelog: [1, 3]}
    )
    assignor._active_tps = assignor._assignment.active_tps
    assignor._standby_tps = assignor._assignment.standby_tps
    assert assignor.assigned_actives() == {TP(changelog, 1), TP(changelog, 2)}
    assert assignor.assigned_standbys() == {TP(changelog, 3)}
    assert not assignor.is_standby(TP(changelog, 1)) and assignor.is_active(TP(changelog, 1))
    assert assignor.is_standby(TP(changelog, 3))
