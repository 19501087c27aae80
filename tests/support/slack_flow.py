"""The approval path over Slack HTTP: open the dialog, type the confirmation, click Approve."""

from __future__ import annotations

import json


async def rows(bot, sql: str = "SELECT * FROM forge.approvals ORDER BY created_at") -> list:
    """Rows of the state store (default: every approval request, oldest first)."""
    pool = await bot.forge.store.pool()
    return await pool.fetch(sql)


async def open_dialog(bot, text: str, user: str = "U0OPS") -> dict:
    """Run a destructive command in C0OPS; the dialog once its dry run (or error) is in."""
    await bot.client.slash(text, user=user, channel="C0OPS")
    await bot.slack.wait_for("views.update")
    await bot.settle()
    [view] = bot.slack.views.values()
    return view


async def confirm(bot, view: dict, typed: str, user: str = "U0OPS"):
    """Submit the confirmation dialog with this typed text."""
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


async def click(bot, approval_id: object, user: str, card_ts: str) -> None:
    """Click Approve on the card as this user."""
    await bot.client.click("forge_approve", str(approval_id), user=user, message_ts=card_ts)
    await bot.settle()


def private(bot) -> str:
    """Everything said to one person only."""
    return json.dumps(
        [e.get("text") for e in bot.slack.ephemerals]
        + [r.get("text") for r in bot.slack.responses],
        ensure_ascii=False,
    )
