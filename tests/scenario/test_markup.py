"""Markup injection over Slack HTTP: text from users and backends reaches Slack escaped on every
path (results, ⏳ progress, private errors, the dialog, the approval card, files, incident posts,
alert cards, the Home tab) while the mentions and channels forge builds itself stay live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.config.settings import Config
from tests.conftest import empty_redis, make_settings, running_forge
from tests.support.alert_fixtures import alert, notification, send, settings_for
from tests.support.hostile import (
    HOSTILE,
    LIVE,
    assert_shown_not_rendered,
    hostile_registry,
    said,
    table_cells,
)
from tests.support.services import redis_url
from tests.support.slack_flow import confirm, open_dialog, private, rows

pytestmark = pytest.mark.integration
CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "channels": {"destructive": ["C0OPS"], "incidents": "C0INC"},
    "incidents": {"checklists": {"P1": [{"title": "Page <!here> <@U0EVIL>", "detail": HOSTILE}]}},
}
URL = redis_url(8)


@pytest.fixture
async def bot(state_dsn, slack) -> AsyncIterator:
    """forge over HTTP with the hostile `test …` commands and an incident board."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url=URL,
    )
    async with empty_redis(URL), running_forge(settings, slack, hostile_registry()) as harness:
        yield harness


async def test_a_result_shows_backend_text_and_never_renders_it(bot):
    """Summary, fields, table, text and the notification text of a result: all escaped."""
    await bot.client.slash("test echo", user="U0OPS", channel="C0OPS")
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert_shown_not_rendered(said([post]))
    assert_shown_not_rendered(post.args["text"])
    assert "<@U0OPS>" in said([post]), "the context line names who ran it as a live mention"
    assert {"type": "raw_text", "text": HOSTILE} in table_cells([post]), "shown as it is"


async def test_progress_notes_are_escaped_in_place(bot):
    """The ⏳ message a handler's progress posts, and its edit into the result, are escaped."""
    await bot.client.slash("test slow", user="U0OPS", channel="C0OPS")
    [post] = await bot.slack.wait_for("chat.postMessage")
    [update] = await bot.slack.wait_for("chat.update")
    assert "⏳" in post.args["text"]
    assert_shown_not_rendered(said([post]))
    assert_shown_not_rendered(said([update]))


async def test_private_errors_escape_backend_text_and_keep_forge_channels_live(bot):
    """A failure quoting the backend is escaped; the allowed channels forge names are links."""
    await bot.client.slash("test fail", user="U0OPS", channel="C0OPS")
    await bot.client.slash("test wipe alpha", user="U0OPS", channel="C0ELSEWHERE")
    await bot.settle()
    assert_shown_not_rendered(private(bot))
    assert "may only be run in <#C0OPS>" in private(bot)


async def test_the_confirmation_dialog_escapes_the_dry_run(bot):
    """The dialog's dry run (summary and fields) quotes the backend, escaped."""
    view = await open_dialog(bot, "test wipe alpha")
    assert_shown_not_rendered(said(bot.slack.calls_to("views.update")))
    assert view["blocks"][0]["text"]["text"].startswith("`test wipe alpha` is destructive")


async def test_the_approval_card_its_progress_and_outcome_are_escaped(bot):
    """Card, ⏳ progress of the approved run and its outcome: escaped; the stored rows plain."""
    view = await open_dialog(bot, "test wipe alpha")
    await confirm(bot, view, "alpha")
    [card] = bot.slack.calls_to("chat.postMessage")
    [row] = await rows(bot)
    await bot.client.click(
        "forge_approve", str(row["id"]), user="U0LEAD", message_ts=card.response["ts"]
    )
    await bot.settle()
    assert_shown_not_rendered(said(bot.slack.calls_to("chat.postMessage")))
    assert_shown_not_rendered(said(bot.slack.calls_to("chat.update")))
    [done] = await rows(bot)
    assert HOSTILE in done["preview"] and HOSTILE in done["outcome"]
    assert "&lt;" not in done["preview"] + done["outcome"], "stored rows hold plain text"
    assert "Approved by <@U0LEAD>" in said(bot.slack.calls_to("chat.update"))


async def test_files_hold_plain_text_and_their_previews_are_escaped(bot):
    """Long text and overflowing tables go up as files of plain text; the message is escaped."""
    await bot.client.slash("test dump", user="U0OPS", channel="C0OPS")
    await bot.client.slash("test many", user="U0OPS", channel="C0OPS")
    await bot.settle()
    assert_shown_not_rendered(said(bot.slack.calls_to("chat.postMessage")))
    assert len(bot.slack.files) == 2
    for uploaded in bot.slack.files:
        content = uploaded.content.decode()
        assert "<!channel> <!here> <@U0EVIL>" in content, "a file shows the text as it is"
        assert "&lt;" not in content and "```" not in content and "*" not in content


async def test_incident_card_checklist_and_timeline_posts_are_escaped(bot):
    """Title, description, a checklist step and an update: escaped in every incident post."""
    await bot.client.slash(
        f"incident declare P1 Checkout {HOSTILE} --description '{HOSTILE}'",
        user="U0OPS",
        channel="C0INC",
    )
    await until(lambda: "step 1. Page" in said(bot.slack.calls_to("chat.postMessage")))
    await bot.client.slash(f"incident update {HOSTILE}", user="U0OPS", channel="C0INC")
    await until(lambda: "INC-1 update:" in said(bot.slack.calls_to("chat.postMessage")))
    board = [c for c in bot.slack.calls if c.args.get("channel") == "C0INC"]
    for call in board:
        assert not [m for m in LIVE if m in said([call])], call.args.get("text")
    assert_shown_not_rendered(said(board))
    card = next(c for c in board if "INC-" in c.args.get("text", ""))
    assert "<@U0OPS>" in said([card]), "the commander is a live mention"


async def test_alert_cards_escape_labels_annotations_and_links(state_dsn, slack):
    """Alert names, labels, annotations and links from Alertmanager: escaped on the card."""
    hostile = alert(
        f"Evil{HOSTILE}",
        queue="email",
        summary=HOSTILE,
        description=HOSTILE,
        runbook_url="https://runbook.example/x?a=1&b=<@U0EVIL>|<!here>",
        dashboard="javascript:alert(1)",
    )
    hostile["labels"]["instance"] = HOSTILE
    async with running_forge(settings_for(state_dsn, slack.url), slack) as bot:
        status, _ = await send(bot, notification([hostile]))
        [card] = await bot.slack.wait_for("chat.postMessage", timeout=5)
    assert status == 200
    assert_shown_not_rendered(said([card]))
    assert_shown_not_rendered(card.args["text"])
    shown = said([card])
    assert "javascript:" not in shown, "only web links become links"
    assert "<https://runbook.example/x?a=1&amp;b=%3C@U0EVIL%3E%7C%3C!here%3E|Runbook>" in shown


async def test_the_home_tab_escapes_incident_titles_alert_labels_and_requests(state_dsn, slack):
    """An incident title, an alert's name and labels: escaped on Home; forge's mentions live."""
    hostile = alert(f"Evil{HOSTILE}", queue="email", summary=HOSTILE)
    hostile["labels"]["instance"] = HOSTILE
    settings = settings_for(state_dsn, slack.url, config={"channels": {"destructive": ["C0OPS"]}})
    async with running_forge(settings, slack, hostile_registry()) as bot:
        status, _ = await send(bot, notification([hostile]))
        await bot.client.slash(f"incident declare P1 Checkout {HOSTILE}", user="U0OPS")
        view = await open_dialog(bot, "test wipe alpha")
        await confirm(bot, view, "alpha")
        await bot.settle()
        event = {"type": "app_home_opened", "user": "U0LEAD", "channel": "D0HOME", "tab": "home"}
        await bot.client.event(event)
        [home] = await bot.slack.wait_for("views.publish", timeout=8)
    assert status == 200
    shown = said([home])
    assert_shown_not_rendered(shown)
    assert shown.count("&lt;!channel&gt;") >= 3, "the incident, the alert and its labels"
    assert "commander <@U0OPS>" in shown, "forge's own mentions stay live"


async def until(predicate, timeout: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a predicate until it holds (the incident board renders twice a second)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.05)
