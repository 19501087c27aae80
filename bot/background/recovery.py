"""Acked work left behind: a dead replica's is reported to the asker, handed-back work is run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.log import get_logger
from bot.slack.outbox import Outbox
from bot.slack.render import message, section
from bot.state.inflight import Acked, Inflight
from bot.text.cells import Code, Text, rich

log = get_logger(__name__)
RECOVERY_EVERY = 5.0


class Recovery:
    """The leader's look at forge.inflight: never runs started work twice, never stays silent."""

    def __init__(
        self,
        inflight: Inflight,
        outbox: Outbox,
        resume: Callable[[Acked], Awaitable[None]],
        redact: Callable[[str], str],
        dead_after: float,
    ) -> None:
        self.inflight, self.outbox, self.resume = inflight, outbox, resume
        self.redact, self.dead_after = redact, dead_after

    async def tick(self) -> int:
        """Report the work of dead replicas, then run what stopping replicas handed back."""
        lost = await self.inflight.orphans(self.dead_after)
        for work in lost:
            await self.report(work)
        taken = await self.inflight.take_back()
        for work in taken:
            log.info("handed_back_work_resumed", request_id=work.request_id, kind=work.kind)
            await self.resume(work)
        return len(lost) + len(taken)

    async def report(self, work: Acked) -> None:
        """Tell the person who asked that their acked request may not have been carried out."""
        log.warning(
            "acked_work_interrupted",
            request_id=work.request_id,
            replica=work.replica,
            kind=work.kind,
            audited=work.audited,
        )
        await self._tell(work, interrupted_text(work, self.redact))

    async def _tell(self, work: Acked, line: Text) -> None:
        note = message(line, [section(line)])
        if work.response_url and await self.outbox.respond(work.response_url, note):
            return
        await self.outbox.ephemeral(work.channel_id, work.actor_id, note, work.thread_ts)


def interrupted_text(work: Acked, redact: Callable[[str], str]) -> Text:
    """What the person who asked reads: what was lost, whether it ran, what to do."""
    text = Code(redact(work.text)[:200])
    if work.audited:
        return rich(
            "⚠️ ",
            text,
            f" ran ({work.audited}), but the forge replica running it stopped before it finished "
            "answering; if its answer is missing, ",
            Code("/forge audit"),
            " has the record.",
        )
    return rich(
        "⚠️ The forge replica handling ",
        text,
        " stopped before it finished; it may not have run. forge does not run it again by "
        "itself: check, then run it again if it is still needed.",
    )
