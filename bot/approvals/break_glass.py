"""Break-glass notices: who ran what from the terminal without a second approver, and why.

Each notice is queued in the state store, one row per channel, before anyone tries to send it:
`forge run --break-glass` sends its rows at once when Slack answers, and the leader's courier in
`forge serve` sends whatever is left. A sender claims a row for a while first, so two never post
the same row; a post that reached Slack but was not marked sent (the sender died between the two)
is the one case that can repeat.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bot.backends.clients import call
from bot.log import get_logger
from bot.slack.outbox import Outbox
from bot.slack.render import Message, context, message, section
from bot.state.store import StateStore
from bot.text.cells import Code, Strong, Text, Time, rich

log = get_logger(__name__)
CLAIM_SECONDS = 60.0
COURIER_EVERY = 10.0


@dataclass(frozen=True)
class Notice:
    """What a break-glass run did, already redacted."""

    command: str
    unix_user: str
    host: str
    reason: str
    outcome: str
    succeeded: bool
    at: datetime

    def as_json(self) -> str:
        """The notice as stored."""
        return json.dumps({**asdict(self), "at": self.at.isoformat()})

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> Notice:
        """A stored notice."""
        values = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return cls(**{**values, "at": datetime.fromisoformat(values["at"])})


def notice_message(notice: Notice) -> Message:
    """The Slack post: a warning line, the reason, the outcome, who and where."""
    head = rich(
        "🚨 Break-glass: ",
        Code(notice.command),
        " was run from the terminal without a second approver.",
    )
    mark = "✅" if notice.succeeded else "🔴"
    body: Text = rich(Strong("Reason"), "\n", notice.reason)
    outcome: Text = rich(Strong("Outcome"), "\n", f"{mark} ", notice.outcome)
    who = rich(
        "Unix user ", Code(notice.unix_user), " on ", Code(notice.host), " · ", Time(notice.at)
    )
    return message(head, [section(Strong(head)), section(body), section(outcome), context(who)])


@dataclass(frozen=True)
class Queued:
    """One channel's copy of a notice, claimed by the sender holding it."""

    id: int
    channel_id: str
    notice: Notice


class NoticeQueue:
    """forge.break_glass_notices: queue, claim, mark sent, release."""

    def __init__(self, store: StateStore, timeout: float) -> None:
        self._store, self._timeout = store, timeout

    async def _fetch(self, sql: str, *args: Any) -> list[Queued]:
        pool = await self._store.pool()
        rows = await call("state store", pool.fetch(sql, *args), self._timeout)
        return [Queued(r["id"], r["channel_id"], Notice.from_json(r["notice"])) for r in rows]

    async def enqueue(self, notice: Notice, channels: list[str]) -> list[Queued]:
        """Queue the notice for each channel, claimed by the caller, who sends it at once."""
        return await self._fetch(
            """INSERT INTO forge.break_glass_notices (channel_id, notice, claimed_until)
               SELECT c, $2::jsonb, now() + make_interval(secs => $3) FROM unnest($1::text[]) c
               RETURNING id, channel_id, notice""",
            channels,
            notice.as_json(),
            CLAIM_SECONDS,
        )

    async def claim_due(self, limit: int = 20) -> list[Queued]:
        """Claim unsent notices nobody holds (or whose sender's claim lapsed), oldest first."""
        return await self._fetch(
            """UPDATE forge.break_glass_notices n
                  SET claimed_until = now() + make_interval(secs => $1), attempts = attempts + 1
                WHERE id IN (SELECT id FROM forge.break_glass_notices
                              WHERE sent_at IS NULL
                                AND (claimed_until IS NULL OR claimed_until < now())
                              ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING id, channel_id, notice""",
            CLAIM_SECONDS,
            limit,
        )

    async def finish(self, queued: Queued, ts: str | None) -> None:
        """Mark a copy sent (with its ts), or release the claim so the courier tries again."""
        pool = await self._store.pool()
        done = (
            pool.execute(
                "UPDATE forge.break_glass_notices SET sent_at = now(), message_ts = $2 "
                "WHERE id = $1",
                queued.id,
                ts,
            )
            if ts
            else pool.execute(
                "UPDATE forge.break_glass_notices SET claimed_until = NULL WHERE id = $1", queued.id
            )
        )
        await call("state store", done, self._timeout)


async def deliver(queue: NoticeQueue, outbox: Outbox, claimed: list[Queued]) -> int:
    """Post each claimed copy; mark it sent, or release it for later. How many were sent."""
    sent = 0
    for queued in claimed:
        ts, error = await outbox.post(queued.channel_id, notice_message(queued.notice))
        await queue.finish(queued, ts)
        if ts:
            sent += 1
            log.info("break_glass_notice_sent", channel=queued.channel_id, notice_id=queued.id)
        else:
            log.warning("break_glass_notice_deferred", channel=queued.channel_id, error=error)
    return sent


class Courier:
    """The leader's job: deliver queued break-glass notices once Slack answers."""

    def __init__(self, queue: NoticeQueue, outbox: Outbox) -> None:
        self.queue, self.outbox = queue, outbox

    async def tick(self) -> int:
        """Send what is due; how many were sent."""
        return await deliver(self.queue, self.outbox, await self.queue.claim_due())
