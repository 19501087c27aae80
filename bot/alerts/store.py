"""Alertmanager notifications stored: a card per open group, alerts by (fingerprint, start)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.backends.clients import call, describe
from bot.state.store import StateStore

if TYPE_CHECKING:
    import asyncpg

RECEIVE = (
    "SELECT forge.receive_alerts($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, "
    "$10, $11, $12, $13, $14)"
)
CLIENT_DATA_ERRORS = (ValueError, TypeError, OverflowError, UnicodeError)
CARD_COLUMNS = (
    "id, group_key, channel, receiver, external_url, common_labels, ts, opened_at, closed_at, "
    "version, listed"
)


@dataclass(frozen=True)
class Incoming:
    """One alert of a notification, as Alertmanager sent it."""

    fingerprint: str
    starts_at: datetime
    alertname: str
    status: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    ends_at: datetime | None


@dataclass(frozen=True)
class Group:
    """A notification's group: its key, where its card goes, and the alerts in it."""

    key: str
    channel: str
    receiver: str
    external_url: str
    common_labels: dict[str, str]
    alerts: list[Incoming]


class AlertStore:
    """Writes notifications idempotently and hands the publisher the cards that changed."""

    def __init__(self, store: StateStore, timeout: float = 5.0) -> None:
        self._store = store
        self._timeout = timeout

    async def receive(self, group: Group) -> bool:
        """Record a notification (one receive_alerts call); True if some card must show anew.
        A storm's notification gets 10 ms more per alert: a timeout would have it retried."""
        pool = await self._store.pool()
        timeout = self._timeout + 0.01 * len(group.alerts)
        return bool(await call("state store", pool.fetchval(RECEIVE, *_arguments(group)), timeout))

    async def receive_sifted(self, group: Group) -> tuple[bool, list[tuple[Incoming, str]]]:
        """Record what the store takes of a notification it refused whole: each alert is tried
        alone first (and undone), then the ones it took are recorded together; the others are
        returned with the store's reason. A store that fails on its own raises BackendError."""
        timeout = self._timeout + 0.02 * len(group.alerts)
        refused = await call("state store", self._sift(group), timeout)
        bad = {id(alert) for alert, _ in refused}
        kept = [a for a in group.alerts if id(a) not in bad]
        changed = await self.receive(replace(group, alerts=kept)) if kept else False
        return changed, refused

    async def _sift(self, group: Group) -> list[tuple[Incoming, str]]:
        pool = await self._store.pool()
        refused = []
        async with pool.acquire() as conn:
            trial = conn.transaction()
            await trial.start()
            try:
                for alert in group.alerts:
                    alone = _arguments(replace(group, alerts=[alert]))
                    try:
                        async with conn.transaction():
                            await conn.fetchval(RECEIVE, *alone)
                    except Exception as exc:  # sorted below: the store's own failures go on up
                        if not is_data_error(exc):
                            raise
                        refused.append((alert, describe(exc)))
            finally:
                await trial.rollback()
        return refused

    async def dirty(self, limit: int = 100) -> list[asyncpg.Record]:
        """Cards whose Slack message lags their alerts, oldest first, not claimed by another."""
        pool = await self._store.pool()
        return await call(
            "state store",
            pool.fetch(
                f"SELECT {CARD_COLUMNS} FROM forge.alert_cards WHERE version > rendered "
                "AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY id LIMIT $1",
                limit,
            ),
            self._timeout,
        )

    async def claim(self, card_id: int, seconds: float) -> asyncpg.Record | None:
        """Claim a card to render (one publisher at a time, across replicas); None if taken."""
        pool = await self._store.pool()
        return await call(
            "state store",
            pool.fetchrow(
                "UPDATE forge.alert_cards SET claimed_until = now() + make_interval(secs => $2) "
                "WHERE id = $1 AND version > rendered "
                "AND (claimed_until IS NULL OR claimed_until < now()) "
                f"RETURNING {CARD_COLUMNS}",
                card_id,
                seconds,
            ),
            self._timeout,
        )

    async def alerts_of(self, card_id: int) -> list[asyncpg.Record]:
        """A card's alerts: firing first, then by start."""
        pool = await self._store.pool()
        return await call(
            "state store",
            pool.fetch(
                "SELECT * FROM forge.alerts WHERE card_id = $1 "
                "ORDER BY status = 'firing' DESC, starts_at, fingerprint",
                card_id,
            ),
            self._timeout,
        )

    async def posted(self, card_id: int, ts: str) -> None:
        """Note a new card's message at once, keeping the claim: if forge dies before the card is
        rendered, the next publisher edits this message instead of posting a second one."""
        pool = await self._store.pool()
        await call(
            "state store",
            pool.execute("UPDATE forge.alert_cards SET ts = $2 WHERE id = $1", card_id, ts),
            self._timeout,
        )

    async def rendered(self, card_id: int, version: int, ts: str | None, listed: int) -> None:
        """Note what Slack now shows and release the claim."""
        pool = await self._store.pool()
        await call(
            "state store",
            pool.execute(
                "UPDATE forge.alert_cards SET rendered = greatest(rendered, $2), "
                "ts = coalesce($3, ts), listed = $4, claimed_until = NULL WHERE id = $1",
                card_id,
                version,
                ts,
                listed,
            ),
            self._timeout,
        )

    async def release(self, card_id: int) -> None:
        """Give a card back after a failed post, so it is tried again."""
        pool = await self._store.pool()
        await call(
            "state store",
            pool.execute(
                "UPDATE forge.alert_cards SET claimed_until = NULL WHERE id = $1", card_id
            ),
            self._timeout,
        )

    async def firing(self, limit: int = 100) -> list[asyncpg.Record]:
        """Alerts firing now, oldest first, with their card's channel and message."""
        pool = await self._store.pool()
        return await call(
            "state store",
            pool.fetch(
                "SELECT a.*, c.channel, c.ts FROM forge.alerts a "
                "JOIN forge.alert_cards c ON c.id = a.card_id "
                "WHERE a.status = 'firing' ORDER BY a.starts_at LIMIT $1",
                limit,
            ),
            self._timeout,
        )


def is_data_error(exc: BaseException | None) -> bool:
    """Whether a failure is the data's (the store answered, or the client could not encode it),
    not the state store's: connection, shutdown and resource errors are the store's."""
    import asyncpg

    store_down = (
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.InsufficientResourcesError,
    )
    data = (asyncpg.PostgresError, *CLIENT_DATA_ERRORS)
    return isinstance(exc, data) and not isinstance(exc, store_down)


def _arguments(group: Group) -> list[Any]:
    return [
        group.key,
        group.channel,
        group.receiver,
        group.external_url,
        json.dumps(group.common_labels),
        *_columns(group.alerts),
    ]


def _columns(alerts: list[Incoming]) -> list[list[Any]]:
    """The alerts as the column arrays forge.receive_alerts unnests."""
    return [
        [a.fingerprint for a in alerts],
        [a.starts_at for a in alerts],
        [a.alertname for a in alerts],
        [a.status for a in alerts],
        [a.severity for a in alerts],
        [json.dumps(a.labels) for a in alerts],
        [json.dumps(a.annotations) for a in alerts],
        [a.generator_url for a in alerts],
        [a.ends_at for a in alerts],
    ]
