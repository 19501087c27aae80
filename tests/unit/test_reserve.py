"""`forge check`'s `postgres reserve` verdict for each way a connection can be kept for forge."""

from __future__ import annotations

from commands.db.reserve import FORGE_NEEDS, judge


def server(**overrides: object) -> dict[str, object]:
    """A PostgreSQL 15 server of 100 connections, forge connecting as the plain role `forge`."""
    return {
        "role": "forge",
        "superuser": False,
        "max": 100,
        "superuser_reserved": 3,
        "reserved": 0,
        "may_use_reserved": False,
        **overrides,
    }


def role(name: str, limit: int) -> dict[str, object]:
    """Another login role with this CONNECTION LIMIT (-1: none)."""
    return {"role": name, "conn_limit": limit, "used": 0}


def test_an_unlimited_application_role_means_nothing_is_reserved():
    """ClientForge's role without a limit can take all 97: the advice caps it and names forge's."""
    reserved, said = judge(server(), [role("clientforge", -1)])
    assert reserved is False and '"clientforge"' in said
    assert f"ALTER ROLE clientforge CONNECTION LIMIT {97 - FORGE_NEEDS};" in said
    assert "GRANT pg_read_all_stats, pg_signal_backend TO forge;" in said


def test_capped_roles_leave_room_for_forge():
    """Limits that add up to less than the usable connections minus forge's need: reserved."""
    assert judge(server(), [role("clientforge", 80), role("reports", 10)])[0] is True
    assert judge(server(), [role("clientforge", 92)])[0] is False


def test_superuser_and_postgres_16_reservations_count():
    """A superuser may use superuser_reserved_connections; on 16+ pg_use_reserved_connections
    with reserved_connections > 0 reserves too; neither helps when it is zero."""
    assert judge(server(superuser=True), [role("clientforge", -1)])[0] is True
    assert judge(server(superuser=True, superuser_reserved=0), [role("cf", -1)])[0] is False
    sixteen = server(reserved=2, may_use_reserved=True)
    assert judge(sixteen, [role("clientforge", -1)])[0] is True
    assert judge(server(may_use_reserved=True), [role("clientforge", -1)])[0] is False
