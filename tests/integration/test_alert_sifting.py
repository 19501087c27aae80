"""The state store's own refusal of an alert, on real PostgreSQL: the notification is sifted, the
alerts it takes are recorded together and the one it refuses is named with its reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.alerts.store import AlertStore, Group, Incoming, is_data_error
from bot.core.errors import BackendError
from bot.state.store import StateStore

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def incoming(fingerprint: str, instance: str) -> Incoming:
    """A firing alert; `instance` is taken as given (nothing cleans it here)."""
    labels = {"alertname": "QueueHighLag", "instance": instance}
    return Incoming(fingerprint, T0, "QueueHighLag", "firing", "", labels, {}, "", None)


async def test_an_alert_the_store_refuses_costs_only_itself(state_dsn):
    """NUL reaching PostgreSQL fails the whole notification as a data error; sifted, the two good
    alerts are recorded and the poisoned one is returned with the store's reason."""
    store = StateStore(state_dsn, 5.0)
    alerts = AlertStore(store)
    group = Group(
        "g",
        "C0ALERTS",
        "forge",
        "",
        {},
        [incoming("a1", "db1"), incoming("a2", "db\x002"), incoming("a3", "db3")],
    )
    try:
        with pytest.raises(BackendError) as whole:
            await alerts.receive(group)
        assert is_data_error(whole.value.__cause__)
        changed, refused = await alerts.receive_sifted(group)
        pool = await store.pool()
        kept = await pool.fetch("SELECT fingerprint FROM forge.alerts ORDER BY fingerprint")
        cards = await pool.fetchval("SELECT count(*) FROM forge.alert_cards")
    finally:
        await store.aclose()
    assert changed and [r["fingerprint"] for r in kept] == ["a1", "a3"] and cards == 1
    [(alert, reason)] = refused
    assert alert.fingerprint == "a2" and reason
