"""`backup restore` via Slack HTTP: preview, typed confirmation, 2nd person, safety dump, once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Harness, running_forge
from tests.support.backup_fixtures import (
    backup_settings,
    cf,  # noqa: F401  (the fixture)
    run,
    table_counts,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def bot(state_dsn, slack, cf, tmp_path: Path) -> AsyncIterator[Harness]:
    """forge over HTTP with the Slack double; DATABASE_URL is the ClientForge-shaped database."""
    async with running_forge(
        backup_settings(state_dsn, cf, tmp_path, slack_api_url=slack.url), slack
    ) as harness:
        yield harness


async def open_dialog(bot: Harness, text: str, user: str = "U0ADMIN") -> dict:
    """Run the destructive command in C0OPS; the dialog once its dry run is in."""
    await bot.client.slash(text, user=user, channel="C0OPS")
    await bot.slack.wait_for("views.update")
    await bot.settle()
    [view] = bot.slack.views.values()
    return view


async def confirm(bot: Harness, view: dict, typed: str, user: str = "U0ADMIN"):
    values = {"confirm": {"typed": {"type": "plain_text_input", "value": typed}}}
    response = await bot.client.submit_view(
        "forge_confirm",
        values,
        user=user,
        view_id=view["id"],
        private_metadata=view["private_metadata"],
    )
    await bot.settle()
    return response


async def approvals(bot: Harness) -> list[asyncpg.Record]:
    pool = await bot.forge.store.pool()
    return await pool.fetch("SELECT * FROM forge.approvals ORDER BY created_at")


async def catalog(bot: Harness) -> list[asyncpg.Record]:
    pool = await bot.forge.store.pool()
    return await pool.fetch("SELECT file, kind, row_counts FROM forge.backups ORDER BY created_at")


def private(bot: Harness) -> str:
    return json.dumps(
        [e.get("text") for e in bot.slack.ephemerals]
        + [r.get("text") for r in bot.slack.responses],
        ensure_ascii=False,
    )


async def damage(dsn: str) -> None:
    """What an incident does: rows deleted, a row added, a table dropped."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "DELETE FROM contacts WHERE id > 1500; INSERT INTO tasks (tenant_id, title) "
        "SELECT tenant_id, 'after the dump' FROM accounts LIMIT 3; DROP TABLE notes"
    )
    await conn.close()


async def test_restore_needs_the_typed_name_and_a_second_person_then_runs_once(bot, cf, tmp_path):
    """The dialog names file, age, size and target; a wrong name and self-approval change nothing;
    U0LEAD's approval takes a safety dump of the damaged database, restores, and every table's rows
    match the dump again."""
    created = await run(bot.forge, "backup create")
    dump = created.result.data["file"]
    before = await table_counts(cf)
    await damage(cf)
    damaged = await table_counts(cf)
    assert damaged != before and "public.notes" not in damaged

    view = await open_dialog(bot, f"backup restore --file {dump}")
    said = json.dumps(view["blocks"], ensure_ascii=False)
    assert f"Would restore `{dump}`" in said and "/forge_cf_" in said and "Type " + dump in said
    assert "safety dump" in said and "Age" in said and "Size" in said

    wrong = await confirm(bot, view, "backup-1999-01-01T00-00-00-000Z.dump")
    assert wrong.json()["response_action"] == "errors" and await approvals(bot) == []

    await confirm(bot, view, dump)
    [request] = await approvals(bot)
    [card] = bot.slack.calls_to("chat.postMessage")
    assert request["status"] == "pending" and f"backup restore --file {dump}" in json.dumps(
        card.args["blocks"]
    )

    await bot.client.click(
        "forge_approve", str(request["id"]), user="U0ADMIN", message_ts=card.response["ts"]
    )
    await bot.settle()
    assert "can't approve your own request" in private(bot)
    assert await table_counts(cf) == damaged and len(await catalog(bot)) == 1

    await bot.client.click(
        "forge_approve", str(request["id"]), user="U0LEAD", message_ts=card.response["ts"]
    )
    await bot.settle()
    [done] = await approvals(bot)
    assert (done["status"], done["decided_by"]) == ("succeeded", "U0LEAD"), done["outcome"]
    assert await table_counts(cf) == before
    first, safety = await catalog(bot)
    assert safety["kind"] == "safety" and safety["file"].endswith("-pre-restore.dump")
    assert json.loads(safety["row_counts"]) == damaged
    thread = [m["text"] for m in bot.slack.messages("C0OPS", thread_ts=card.response["ts"])]
    assert (
        len(thread) == 1
        and f"Restored `{dump}`" in thread[0]
        and "every table's row count matches" in thread[0]
    )
    notes = [
        c.args["text"]
        for c in bot.slack.calls_to("chat.postMessage") + bot.slack.calls_to("chat.update")
        if c.args["text"].startswith("⏳")
    ]
    assert any("-pre-restore.dump" in n for n in notes) and any(
        n.startswith(f"⏳ Restoring `{dump}`") for n in notes
    )

    await bot.client.click(
        "forge_approve", str(request["id"]), user="U0LEAD", message_ts=card.response["ts"]
    )
    await bot.settle()
    assert "already approved" in private(bot) and len(await catalog(bot)) == 2
    log = (tmp_path / "logs" / "backup.log").read_text()
    assert f"backup restore {dump} ok: Restored" in log


async def test_restore_without_a_file_names_the_newest_and_requests_nothing(bot):
    """No `--file`: the dialog names the newest dump, nothing to confirm; nothing vague approved."""
    dump = (await run(bot.forge, "backup create")).result.data["file"]
    view = await open_dialog(bot, "backup restore")
    said = json.dumps(view["blocks"], ensure_ascii=False)
    assert "Name the dump to restore" in said and dump in said and "submit" not in view
    assert await approvals(bot) == []


async def test_viewer_and_operator_may_not_restore(bot):
    dump = (await run(bot.forge, "backup create")).result.data["file"]
    for user in ("U0VIEW", "U0OPS"):
        outcome = await run(bot.forge, f"backup restore --file {dump}", user=user)
        assert outcome.kind == "denied" and "needs the admin role" in outcome.message


async def test_create_over_slack_edits_one_progress_message(bot):
    """`/forge backup create`: one ⏳ message, edited with each step, ending as the ✅ result."""
    await bot.client.slash("backup create", user="U0OPS", channel="C0OPS")
    await bot.settle()
    [posted] = bot.slack.calls_to("chat.postMessage")
    assert posted.args["text"].startswith("⏳ Dumping `127.0.0.1:5432/forge_cf_")
    notes = [c.args["text"] for c in bot.slack.calls_to("chat.update")]
    assert any(n.startswith("⏳ Checksumming `backup-") for n in notes)
    [final] = bot.slack.messages("C0OPS")
    assert (
        final["text"].startswith("✅ backup create — ok") and final["ts"] == posted.response["ts"]
    )
