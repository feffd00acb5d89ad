"""Hooks on a worker's rebalances: what an agent forgets or finishes when its partitions move."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from faust.types import TP, AppT

PartitionsHook = Callable[[set[TP]], Awaitable[None]]


def on_partitions_revoked(app: AppT, hook: PartitionsHook) -> None:
    """Run `hook(revoked)` when this worker loses partitions, before they are reassigned."""

    async def receive(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        await hook(revoked)

    app.on_partitions_revoked.connect(cast(Any, receive))


def on_partitions_assigned(app: AppT, hook: PartitionsHook) -> None:
    """Run `hook(assigned)` when this worker is given its (new) partitions."""

    async def receive(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        await hook(assigned)

    app.on_partitions_assigned.connect(cast(Any, receive))
