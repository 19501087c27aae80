"""Where an invocation answers in Slack: a ⏳ message edited in place, the result, errors."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.dispatch import Outcome
from bot.slack.outbox import Outbox
from bot.slack.render import Meta, running_message, to_message
from bot.text.cells import Text

NOT_MEMBER = {"not_in_channel", "channel_not_found", "is_archived"}


@dataclass
class Reply:
    """Where an invocation answers: a ⏳ message edited in place, the result, private errors."""

    outbox: Outbox
    channel: str
    user: str
    response_url: str | None = None
    thread_ts: str | None = None
    ts: str | None = None
    trigger_id: str | None = None
    in_place: bool = False  # a page click: edit its message (ts, or an ephemeral's response_url)

    async def progress(self, note: Text, meta: Meta) -> None:
        """Post the ⏳ message, or edit it with news."""
        message = running_message(note, meta)
        if self.in_place and not self.ts:
            return  # an ephemeral page is replaced once, with the result
        if self.ts:
            await self.outbox.update(self.channel, self.ts, message)
        else:
            self.ts, _ = await self.outbox.post(self.channel, message, self.thread_ts)

    async def deliver(self, outcome: Outcome, meta: Meta) -> None:
        """The result for the channel, or the error for the caller alone."""
        message = to_message(outcome, meta)
        if outcome.private:
            if self.ts and not self.in_place:
                await self.outbox.delete(self.channel, self.ts)
            if not (self.response_url and await self.outbox.respond(self.response_url, message)):
                await self.outbox.ephemeral(self.channel, self.user, message, self.thread_ts)
            return
        if self.in_place and not self.ts and self.response_url:
            await self.outbox.respond(self.response_url, message, replace=True)
            return
        ts: str | None = None
        if self.ts and await self.outbox.update(self.channel, self.ts, message):
            ts = self.ts
        else:
            ts, error = await self.outbox.post(self.channel, message, self.thread_ts)
            if ts is None and error in NOT_MEMBER and self.response_url:
                await self.outbox.respond(self.response_url, message, in_channel=True)
        if self.in_place and ts == self.ts:
            return  # the list's files went up with its first page
        for attachment in message.attachments:
            await self.outbox.upload(self.channel, attachment, self.thread_ts or ts)
