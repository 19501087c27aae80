"""An approved execution's lease: renewed while it runs, so a replica that dies lets it lapse.

The leader's sweep turns a lapsed execution into `outcome_unknown` and never runs it again; the
card then names what to check, from the command's own `if_unknown` advice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.background.loops import stop
from bot.core.errors import BackendError
from bot.log import get_logger

if TYPE_CHECKING:
    from bot.approvals.store import ApprovalStore
    from bot.core.registry import CommandSpec

log = get_logger(__name__)
LAPSED = (
    "forge stopped while this was running, so whether it finished is unknown; "
    "forge never runs it again by itself."
)


@asynccontextmanager
async def renewing(
    approvals: ApprovalStore, approval_id: uuid.UUID, lease: timedelta, every: float
) -> AsyncIterator[None]:
    """Renew the execution's lease every `every` seconds while the block runs."""
    task = asyncio.create_task(_renew(approvals, approval_id, lease, every))
    try:
        yield
    finally:
        await stop(task)


async def _renew(
    approvals: ApprovalStore, approval_id: uuid.UUID, lease: timedelta, every: float
) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            if not await approvals.renew(approval_id, lease):  # finished, or swept as unknown
                log.info("execution_lease_ended", approval_id=str(approval_id))
                return
        except BackendError as exc:  # the next renewal tries again; the lease may still hold
            log.warning("execution_lease_not_renewed", approval_id=str(approval_id), error=str(exc))


def unknown_advice(spec: CommandSpec | None) -> str:
    """The outcome text of a lapsed execution: what happened, and what to check before again."""
    check = spec.if_unknown if spec and spec.if_unknown else "the target's state"
    return f"{LAPSED} Before requesting it again, check {check}"
