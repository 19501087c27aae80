"""Incidents in the state store: record, checklist items, timeline, what Slack has yet to show."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bot.backends.clients import call
from bot.config.settings import ChecklistItem
from bot.incidents.checklists import key
from bot.state.store import StateStore
from bot.text.redact import redact, redact_value

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")
RUN_REPEAT_SECONDS = 5
BUMP = "UPDATE forge.incidents SET version = version + 1 WHERE id = $1"
ITEM_COLUMNS = "(incident_id, position, key, title, detail, commands, marks)"


class IncidentStore:
    """All reads and writes of incidents; each write bumps the incident's version for the board."""

    def __init__(self, store: StateStore, timeout: float = 5.0) -> None:
        self._store = store
        self._timeout = timeout

    async def _run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], transaction: bool = True
    ) -> T:
        pool = await self._store.pool()

        async def run() -> T:
            async with pool.acquire() as conn:
                if not transaction:
                    return await work(conn)
                async with conn.transaction():
                    return await work(conn)

        return await call("state store", run(), self._timeout)

    async def declare(
        self,
        *,
        title: str,
        severity: str,
        commander: str,
        channel: str,
        description: str,
        component: str,
        items: Sequence[ChecklistItem],
    ) -> asyncpg.Record:
        """A new open incident with its checklist and a `declared` event."""

        async def work(conn: asyncpg.Connection) -> asyncpg.Record:
            row = await conn.fetchrow(
                "INSERT INTO forge.incidents (title, severity, commander, channel, description, "
                "component) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                redact(title),
                severity,
                commander,
                channel,
                redact(description),
                component,
            )
            await _add_items(conn, row["id"], 1, items)
            await _event(
                conn,
                row["id"],
                "declared",
                commander,
                f"Declared {severity}: {title}",
                {"severity": severity},
            )
            return row

        return await self._run(work)

    async def get(self, incident_id: int) -> asyncpg.Record | None:
        """One incident."""
        return await self._run(
            lambda c: c.fetchrow("SELECT * FROM forge.incidents WHERE id = $1", incident_id), False
        )

    async def by_thread(self, channel: str, thread_ts: str) -> asyncpg.Record | None:
        """The incident whose card starts this thread."""
        return await self._run(
            lambda c: c.fetchrow(
                "SELECT * FROM forge.incidents WHERE channel = $1 AND card_ts = $2",
                channel,
                thread_ts,
            ),
            False,
        )

    async def open_incidents(self, channel: str | None = None) -> list[asyncpg.Record]:
        """Open incidents, oldest first, in one channel or everywhere."""
        return await self._run(
            lambda c: c.fetch(
                "SELECT * FROM forge.incidents WHERE status = 'open' "
                "AND ($1::text IS NULL OR channel = $1) ORDER BY declared_at",
                channel,
            ),
            False,
        )

    async def items(self, incident_id: int) -> list[asyncpg.Record]:
        """Checklist items in order."""
        return await self._run(
            lambda c: c.fetch(
                "SELECT * FROM forge.incident_items WHERE incident_id = $1 ORDER BY position",
                incident_id,
            ),
            False,
        )

    async def events(self, incident_id: int) -> list[asyncpg.Record]:
        """The timeline, oldest first."""
        return await self._run(
            lambda c: c.fetch(
                "SELECT * FROM forge.incident_events WHERE incident_id = $1 ORDER BY at, id",
                incident_id,
            ),
            False,
        )

    async def check(
        self, incident_id: int, position: int, actor: str, undo: bool
    ) -> asyncpg.Record | None:
        """Mark an item done (or not); None if it already was, so a double click records nothing."""

        async def work(conn: asyncpg.Connection) -> asyncpg.Record | None:
            row = await conn.fetchrow(
                "UPDATE forge.incident_items SET done_by = $3, done_at = CASE WHEN $4 THEN NULL "
                "ELSE now() END, version = version + 1 WHERE incident_id = $1 AND position = $2 "
                "AND (done_at IS NULL) <> $4 RETURNING *",
                incident_id,
                position,
                None if undo else actor,
                undo,
            )
            if row is not None:
                verb = "reopened" if undo else "done"
                await _event(
                    conn,
                    incident_id,
                    "item_undone" if undo else "item_done",
                    actor,
                    f"{position}. {row['title']} {verb}",
                    {"position": position, "marks": row["marks"]},
                )
            return row

        return await self._run(work)

    async def assign(
        self, incident_id: int, position: int, assignee: str, actor: str
    ) -> asyncpg.Record | None:
        """Give an item an owner; None when it already had that one."""

        async def work(conn: asyncpg.Connection) -> asyncpg.Record | None:
            row = await conn.fetchrow(
                "UPDATE forge.incident_items SET assignee = $3, version = version + 1 WHERE "
                "incident_id = $1 AND position = $2 AND assignee IS DISTINCT FROM $3 RETURNING *",
                incident_id,
                position,
                assignee,
            )
            if row is not None:
                await _event(
                    conn,
                    incident_id,
                    "assigned",
                    actor,
                    f"{position}. {row['title']} assigned to @{assignee}",
                    {"position": position, "assignee": assignee},
                )
            return row

        return await self._run(work)

    async def update(self, incident_id: int, actor: str, text: str) -> None:
        """A status update for the thread and the card."""
        await self._run(lambda c: _event(c, incident_id, "update", actor, text, {}, shown=False))

    async def change_severity(
        self, incident_id: int, severity: str, actor: str, items: Sequence[ChecklistItem]
    ) -> tuple[str, list[str]]:
        """The new severity and the steps it adds (those missing by key); the old severity."""

        async def work(conn: asyncpg.Connection) -> tuple[str, list[str]]:
            old = await conn.fetchval(
                "SELECT severity FROM forge.incidents WHERE id = $1 FOR UPDATE", incident_id
            )
            have = {
                r["key"]
                for r in await conn.fetch(
                    "SELECT key FROM forge.incident_items WHERE incident_id = $1", incident_id
                )
            }
            added = [i for i in items if key(i) not in have]
            last = await conn.fetchval(
                "SELECT coalesce(max(position), 0) FROM forge.incident_items "
                "WHERE incident_id = $1",
                incident_id,
            )
            await _add_items(conn, incident_id, last + 1, added)
            await conn.execute(
                "UPDATE forge.incidents SET severity = $2 WHERE id = $1", incident_id, severity
            )
            await _event(
                conn,
                incident_id,
                "severity",
                actor,
                f"Severity {old} → {severity}"
                + (f"; added {', '.join(i.title for i in added)}" if added else ""),
                {"from": old, "to": severity, "added": [i.title for i in added]},
                shown=False,
            )
            return old, [i.title for i in added]

        return await self._run(work)

    async def resolve(
        self, incident_id: int, actor: str, summary: str, forced_reason: str | None
    ) -> bool:
        """Close it; False when it was resolved already."""

        async def work(conn: asyncpg.Connection) -> bool:
            done = await conn.fetchval(
                "UPDATE forge.incidents SET status = 'resolved', resolved_at = now(), "
                "summary = $2, forced_reason = $3 WHERE id = $1 AND status = 'open' RETURNING true",
                incident_id,
                redact(summary),
                redact(forced_reason or "") or None,
            )
            if done:
                text = (
                    "Resolved"
                    + (f": {summary}" if summary else "")
                    + (f" (forced with items open: {forced_reason})" if forced_reason else "")
                )
                await _event(
                    conn,
                    incident_id,
                    "resolved",
                    actor,
                    text,
                    {"forced": forced_reason},
                    shown=False,
                )
            return bool(done)

        return await self._run(work)

    async def record(
        self, incident_id: int, kind: str, actor: str, text: str, detail: dict[str, Any]
    ) -> bool:
        """A timeline entry (thread command, approval); the same one within seconds is dropped."""

        async def work(conn: asyncpg.Connection) -> bool:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('forge-incident:' || $1::bigint))",
                incident_id,
            )
            repeated = await conn.fetchval(
                "SELECT 1 FROM forge.incident_events WHERE incident_id = $1 AND kind = $2 "
                "AND actor = $3 AND text = $4 AND at > now() - make_interval(secs => $5)",
                incident_id,
                kind,
                actor,
                redact(text),
                RUN_REPEAT_SECONDS,
            )
            if repeated:
                return False
            await _event(conn, incident_id, kind, actor, text, detail)
            return True

        return await self._run(work)

    async def dirty(self) -> list[asyncpg.Record]:
        """Incidents Slack is behind on and no replica is rendering."""
        return await self._run(
            lambda c: c.fetch(
                "SELECT id FROM forge.incidents WHERE version > rendered "
                "AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY id LIMIT 50"
            ),
            False,
        )

    async def claim(self, incident_id: int, seconds: float = 60) -> asyncpg.Record | None:
        """Take an incident for rendering; None when another replica has it."""
        return await self._run(
            lambda c: c.fetchrow(
                "UPDATE forge.incidents SET claimed_until = now() + make_interval(secs => $2) "
                "WHERE id = $1 AND version > rendered "
                "AND (claimed_until IS NULL OR claimed_until < now()) RETURNING *",
                incident_id,
                seconds,
            ),
            False,
        )

    async def move(self, incident_id: int, channel: str) -> asyncpg.Record:
        """The incident now lives in a channel of its own."""
        return await self._run(
            lambda c: c.fetchrow(
                "UPDATE forge.incidents SET channel = $2, own_channel = true "
                "WHERE id = $1 RETURNING *",
                incident_id,
                channel,
            ),
            False,
        )

    async def set_card(self, incident_id: int, ts: str) -> None:
        """Where the card is."""
        await self._run(
            lambda c: c.execute(
                "UPDATE forge.incidents SET card_ts = $2 WHERE id = $1", incident_id, ts
            ),
            False,
        )

    async def item_shown(self, incident_id: int, position: int, version: int, ts: str) -> None:
        """An item's message shows this version."""
        await self._run(
            lambda c: c.execute(
                "UPDATE forge.incident_items SET rendered = greatest(rendered, $3), "
                "message_ts = $4 WHERE incident_id = $1 AND position = $2",
                incident_id,
                position,
                version,
                ts,
            ),
            False,
        )

    async def event_shown(self, event_id: int) -> None:
        """A timeline entry was posted in the thread."""
        await self._run(
            lambda c: c.execute(
                "UPDATE forge.incident_events SET shown = true WHERE id = $1", event_id
            ),
            False,
        )

    async def rendered(self, incident_id: int, version: int, done: bool) -> None:
        """Release the claim; when everything was shown, note the version Slack is at."""
        await self._run(
            lambda c: c.execute(
                "UPDATE forge.incidents SET claimed_until = NULL, rendered = CASE WHEN $3 "
                "THEN greatest(rendered, $2) ELSE rendered END WHERE id = $1",
                incident_id,
                version,
                done,
            ),
            False,
        )


async def _add_items(
    conn: asyncpg.Connection, incident_id: int, first: int, items: Sequence[ChecklistItem]
) -> None:
    await conn.executemany(
        f"INSERT INTO forge.incident_items {ITEM_COLUMNS} "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
        [
            (incident_id, first + n, key(i), i.title, i.detail, json.dumps(i.commands), i.marks)
            for n, i in enumerate(items)
        ],
    )


async def _event(
    conn: asyncpg.Connection,
    incident_id: int,
    kind: str,
    actor: str,
    text: str,
    detail: dict[str, Any],
    shown: bool = True,
) -> None:
    """A timeline entry; an unshown one is posted in the thread by the board."""
    await conn.execute(
        "INSERT INTO forge.incident_events (incident_id, kind, actor, text, detail, shown) "
        "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
        incident_id,
        kind,
        actor,
        redact(text),
        json.dumps(redact_value(detail)),
        shown,
    )
    await conn.execute(BUMP, incident_id)
