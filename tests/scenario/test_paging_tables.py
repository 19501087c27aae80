"""Paging and native tables over signed requests: Prev/Next edit the message, tables as blocks."""

from __future__ import annotations

import json

import pytest

from bot.core.audit import AuditEntry
from tests.support.slack_flow import private

pytestmark = pytest.mark.integration


async def fill_audit(bot, count: int) -> None:
    """`count` audit rows, as many commands would leave."""
    for i in range(count):
        await bot.forge.audit.record(AuditEntry("command", "U0OPS", f"health {i}", "ok"))


async def first_page(bot, text: str, user: str = "U0ADMIN"):
    """Run a command in C0OPS; its one channel message."""
    bot.slack.clear()
    await bot.client.slash(text, user=user, channel="C0OPS")
    await bot.settle()
    [post] = bot.slack.calls_to("chat.postMessage")
    return post


def button(blocks: list[dict], action_id: str) -> dict | None:
    """The button with this action_id, if the blocks have one."""
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element.get("action_id") == action_id:
                return element
    return None


def since(bot, mark: int, method: str) -> list:
    """Calls of `method` after the first `mark` calls."""
    return [c for c in bot.slack.calls[mark:] if c.method == method]


def shown(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def table_rows(blocks: list[dict]) -> list[list[str]]:
    """The message's table block as text, header first."""
    [table] = [b for b in blocks if b["type"] == "table"]
    return [[c.get("text") or json.dumps(c["elements"]) for c in row] for row in table["rows"]]


async def test_next_edits_the_message_with_a_page_fetched_at_the_click(harness):
    """`audit --limit 5`: page 1 of 5; five more rows arrive; Next shows page 2 of 6, fresh."""
    await fill_audit(harness, 24)
    post = await first_page(harness, "audit --limit 5")
    blocks = post.args["blocks"]
    assert "page 1 of 5 · 5 per page" in shown(blocks)
    assert button(blocks, "forge_page:prev") is None
    next_button = button(blocks, "forge_page:next")
    assert next_button["value"] == "audit --limit 5 --page 2"
    assert len(table_rows(blocks)) == 6 and blocks[-1]["type"] == "table"
    await fill_audit(harness, 5)
    mark = len(harness.slack.calls)
    await harness.client.click(
        "forge_page:next", next_button["value"], user="U0ADMIN", message_ts=post.response["ts"]
    )
    await harness.settle()
    [update] = since(harness, mark, "chat.update")
    assert not since(harness, mark, "chat.postMessage")
    assert update.args["ts"] == post.response["ts"]
    blocks = update.args["blocks"]
    assert "page 2 of 6 · 5 per page" in shown(blocks)
    assert button(blocks, "forge_page:prev")["value"] == "audit --limit 5 --page 1"
    pool = await harness.forge.store.pool()
    newest = await pool.fetch(  # as it was at the click, before the click's own row
        "SELECT id FROM forge.audit_log WHERE event <> 'page' ORDER BY id DESC LIMIT 10"
    )
    assert [r[0] for r in table_rows(blocks)[1:]] == [str(r["id"]) for r in newest[5:]]


async def test_incident_list_pages_twenty_at_a_time(harness):
    """25 open incidents: page 1 of 2 holds 20; Next shows the other 5, oldest first."""
    for n in range(25):
        await harness.forge.incidents.declare(
            title=f"Outage {n}",
            severity="P3",
            commander="U0OPS",
            channel="C0INC",
            description="",
            component="api",
            items=[],
        )
    post = await first_page(harness, "incident list", user="U0VIEW")
    blocks = post.args["blocks"]
    assert "page 1 of 2 · 20 per page" in shown(blocks) and len(table_rows(blocks)) == 21
    value = button(blocks, "forge_page:next")["value"]
    mark = len(harness.slack.calls)
    await harness.client.click(
        "forge_page:next", value, user="U0VIEW", message_ts=post.response["ts"]
    )
    await harness.settle()
    [update] = since(harness, mark, "chat.update")
    rows = table_rows(update.args["blocks"])
    assert [r[2] for r in rows[1:]] == [f"Outage {n}" for n in range(20, 25)]


async def test_a_clicker_without_the_role_is_refused_and_the_page_stays(harness):
    """A viewer clicking Next on an admin's audit page is told no, privately; nothing is edited."""
    await fill_audit(harness, 12)
    post = await first_page(harness, "audit --limit 5")
    value = button(post.args["blocks"], "forge_page:next")["value"]
    mark = len(harness.slack.calls)
    await harness.client.click(
        "forge_page:next", value, user="U0VIEW", message_ts=post.response["ts"]
    )
    await harness.settle()
    assert not since(harness, mark, "chat.update") and not since(harness, mark, "chat.delete")
    assert "needs the admin role" in private(harness)
    assert harness.slack.message_at("C0OPS", post.response["ts"])["blocks"] == post.args["blocks"]


async def test_an_ephemeral_page_is_replaced_through_its_response_url(harness):
    """Prev on an ephemeral message replaces it through the response_url, not chat.update."""
    await fill_audit(harness, 12)
    harness.slack.clear()
    await harness.client.click(
        "forge_page:prev", "audit --limit 5 --page 1", user="U0ADMIN", is_ephemeral=True
    )
    await harness.settle()
    [response] = harness.slack.responses
    assert response["replace_original"] is True and not harness.slack.calls_to("chat.update")
    assert "page 1 of" in shown(response["blocks"])


async def test_a_page_button_without_its_command_is_refused_at_the_door(harness):
    """The ingress check: a page button's value is a command with --page N."""
    response = await harness.client.click("forge_page:next", "rm -rf", user="U0ADMIN")
    assert response.status == 400 and "without its command" in response.body


async def test_more_than_100_rows_fall_back_to_monospace_and_a_file(harness):
    """`audit --limit 150`: 151 table rows do not fit Slack's table block; the text form goes."""
    await fill_audit(harness, 160)
    post = await first_page(harness, "audit --limit 150")
    blocks = post.args["blocks"]
    assert not [b for b in blocks if b["type"] == "table"]
    assert "```" in shown(blocks) and "150 rows" in shown(blocks)
    assert harness.slack.files and harness.slack.files[0].filename.endswith(".txt")
