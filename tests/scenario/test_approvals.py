"""Destructive-action engine end to end: typed confirmation, two-person approval, exactly once."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.config.settings import Config
from tests.conftest import make_settings, running_forge
from tests.support.approval_fixtures import EXECUTED, GENERATION, registry_with_wipe

pytestmark = pytest.mark.integration
CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS", "U0OPS2"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD", "U0LEAD2", "U0OPS"],
        "channels": {"destructive": ["C0OPS"]},
    }
)


@pytest.fixture(autouse=True)
def _forget_executions():
    EXECUTED.clear()
    GENERATION[0] = 0


@pytest.fixture
def settings(state_dsn, slack):
    """Settings for a forge with approvers and a destructive-channel allowlist."""
    return make_settings(CONFIG, forge_state_database_url=state_dsn, slack_api_url=slack.url)


@pytest.fixture
async def bot(settings, slack):
    """forge over HTTP with the `test wipe` destructive command registered."""
    async with running_forge(settings, slack, registry_with_wipe()) as harness:
        yield harness


async def open_dialog(bot, text="test wipe alpha", user="U0OPS", channel="C0OPS"):
    """Run a destructive command and return the dialog forge opened, once its dry run is in."""
    await bot.client.slash(text, user=user, channel=channel)
    await bot.slack.wait_for("views.update")
    await bot.settle()
    [view] = bot.slack.views.values()
    return view


async def confirm(bot, view, typed, user="U0OPS"):
    """Submit the dialog with the typed confirmation."""
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


async def rows(bot, sql="SELECT * FROM forge.approvals ORDER BY created_at"):
    """Rows from the state store."""
    pool = await bot.forge.store.pool()
    return await pool.fetch(sql)


async def requested(bot, user="U0OPS"):
    """A pending request made through the dialog; its stored row."""
    view = await open_dialog(bot, user=user)
    await confirm(bot, view, "alpha", user=user)
    [row] = await rows(bot)
    return row


async def click(bot, action, approval_id, user):
    """Click Approve or Deny on the card."""
    card = bot.slack.calls_to("chat.postMessage")[0]
    await bot.client.click(action, str(approval_id), user=user, message_ts=card.response["ts"])
    await bot.settle()


def ephemeral_texts(bot) -> str:
    """Everything said privately."""
    return json.dumps(
        [e.get("text") for e in bot.slack.ephemerals]
        + [r.get("text") for r in bot.slack.responses],
        ensure_ascii=False,
    )


async def test_dialog_shows_the_dry_run_and_asks_for_the_target(bot):
    """A dialog opens at once; the dry run replaces the spinner; the field names the target."""
    view = await open_dialog(bot)
    said = json.dumps(view["blocks"], ensure_ascii=False)
    assert "Would wipe 3 items from alpha" in said and "Type alpha to confirm" in said
    assert (
        bot.slack.calls_to("views.open")[0].args["view"]["blocks"][1]["text"]["text"]
        == "⏳ Computing the dry run…"
    )
    assert not bot.slack.calls_to("chat.postMessage") and await rows(bot) == []


async def test_wrong_confirmation_is_refused_in_the_dialog_and_changes_nothing(bot):
    """Typing the wrong target keeps the dialog open with an error; nothing is stored or run."""
    view = await open_dialog(bot)
    response = await confirm(bot, view, "alpah")
    assert response.json() == {
        "response_action": "errors",
        "errors": {"confirm": "Type `alpha` exactly to confirm."},
    }
    assert await rows(bot) == [] and not bot.slack.calls_to("chat.postMessage") and EXECUTED == []
    audit = await rows(bot, "SELECT event FROM forge.audit_log")
    assert "confirm_mismatch" in [r["event"] for r in audit]


async def test_right_confirmation_posts_a_card_with_the_exact_request(bot):
    """A correct confirmation stores a pending request and posts its card with Approve and Deny."""
    row = await requested(bot)
    assert row["status"] == "pending" and json.loads(row["params"]) == {
        "target": "alpha",
        "dry_run": False,
    }
    [card] = bot.slack.calls_to("chat.postMessage")
    said = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert "test wipe alpha" in said and "Would wipe 3 items" in said and "<@U0OPS>" in said
    assert [e["action_id"] for e in card.args["blocks"][-1]["elements"]] == [
        "forge_approve",
        "forge_deny",
    ]
    assert row["message_ts"] == card.response["ts"] and EXECUTED == []


async def test_approvals_lists_pending_requests(bot):
    """`approvals` shows the pending request."""
    row = await requested(bot)
    bot.slack.clear()
    await bot.client.slash("approvals", user="U0VIEW")
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert row["id"].hex[:8] in json.dumps(post.args)


async def test_approval_executes_once_and_updates_the_card(bot):
    """An approver's click runs the stored command once; card ⏳ → ✅; result in the thread."""
    row = await requested(bot)
    await click(bot, "forge_approve", row["id"], "U0LEAD")
    assert EXECUTED == ["alpha"]
    [done] = await rows(bot)
    assert done["status"] == "succeeded" and done["decided_by"] == "U0LEAD"
    updates = [c.args["text"] for c in bot.slack.calls_to("chat.update")]
    assert any("running" in u for u in updates) and "done" in updates[-1]
    assert any(
        c.args.get("thread_ts") == row["message_ts"] for c in bot.slack.calls_to("chat.postMessage")
    )
    events = [r["event"] for r in await rows(bot, "SELECT event FROM forge.audit_log ORDER BY id")]
    for event in ("approval_requested", "approved", "intent", "outcome"):
        assert event in events


async def test_self_approval_is_refused(bot):
    """The requester, though an approver, cannot approve their own request."""
    row = await requested(bot, user="U0OPS")
    await click(bot, "forge_approve", row["id"], "U0OPS")
    assert EXECUTED == [] and (await rows(bot))[0]["status"] == "pending"
    assert "can't approve your own request" in ephemeral_texts(bot)


async def test_non_approver_is_refused(bot):
    """An operator who is not an approver cannot approve."""
    row = await requested(bot)
    await click(bot, "forge_approve", row["id"], "U0OPS2")
    assert EXECUTED == [] and (await rows(bot))[0]["status"] == "pending"
    assert "Only approvers may approve" in ephemeral_texts(bot)


async def test_double_click_executes_once(bot):
    """Two approvers clicking at once (and a double click) run it once; losers are told who won."""
    row = await requested(bot)
    card_ts = bot.slack.calls_to("chat.postMessage")[0].response["ts"]
    await asyncio.gather(
        *(
            bot.client.click("forge_approve", str(row["id"]), user=u, message_ts=card_ts)
            for u in ("U0LEAD", "U0LEAD2", "U0LEAD", "U0LEAD2")
        )
    )
    await bot.settle()
    assert EXECUTED == ["alpha"]
    assert "already approved" in ephemeral_texts(bot)


async def test_two_forge_processes_sharing_the_store_execute_once(settings, slack):
    """Approvals delivered to two replicas at the same moment run the command once."""
    registry = registry_with_wipe()
    async with (
        running_forge(settings, slack, registry) as one,
        running_forge(settings, slack, registry) as two,
    ):
        row = await requested(one)
        ts = slack.calls_to("chat.postMessage")[0].response["ts"]
        await asyncio.gather(
            one.client.click("forge_approve", str(row["id"]), user="U0LEAD", message_ts=ts),
            two.client.click("forge_approve", str(row["id"]), user="U0LEAD2", message_ts=ts),
        )
        await one.settle()
        await two.settle()
    assert EXECUTED == ["alpha"]


async def test_request_survives_a_restart(settings, slack):
    """A request made before a restart is approved after it, and runs."""
    registry = registry_with_wipe()
    async with running_forge(settings, slack, registry) as before:
        row = await requested(before)
    async with running_forge(settings, slack, registry) as after:
        await click(after, "forge_approve", row["id"], "U0LEAD")
    assert EXECUTED == ["alpha"]


async def test_expired_request_never_executes(bot):
    """After expiry the click is refused; the sweep marks the card expired."""
    row = await requested(bot)
    pool = await bot.forge.store.pool()
    await pool.execute("UPDATE forge.approvals SET expires_at = now() - interval '1 second'")
    await click(bot, "forge_approve", row["id"], "U0LEAD")
    assert EXECUTED == [] and "expired" in ephemeral_texts(bot)
    await bot.surface.approval_ui.sweep()
    assert (await rows(bot))[0]["status"] == "expired"
    assert "Expired" in bot.slack.calls_to("chat.update")[-1].args["text"]


async def test_deny_then_approve_never_executes(bot):
    """A denied request cannot be approved later; the approver is told it was denied and by whom."""
    row = await requested(bot)
    await click(bot, "forge_deny", row["id"], "U0LEAD")
    await click(bot, "forge_approve", row["id"], "U0LEAD2")
    assert EXECUTED == [] and (await rows(bot))[0]["status"] == "denied"
    assert "already denied by <@U0LEAD>" in ephemeral_texts(bot)


async def test_requester_can_cancel(bot):
    """The requester's Deny cancels the request."""
    row = await requested(bot)
    await click(bot, "forge_deny", row["id"], "U0OPS")
    assert (await rows(bot))[0]["status"] == "cancelled"


async def test_button_value_cannot_carry_arguments(bot):
    """A forged button value (garbage, another id) reaches nothing; args come only from the row."""
    await requested(bot)
    await click(bot, "forge_approve", "alpha; FLUSHALL", "U0LEAD")
    await click(bot, "forge_approve", "00000000-0000-0000-0000-000000000000", "U0LEAD")
    assert EXECUTED == [] and ephemeral_texts(bot).count("No such approval request.") == 2


async def test_altered_stored_arguments_are_not_executed(bot):
    """If the stored arguments change after the request, execution refuses (G4)."""
    row = await requested(bot)
    pool = await bot.forge.store.pool()
    await pool.execute(
        """UPDATE forge.approvals SET params = '{"target": "beta", "dry_run": false}'"""
    )
    await click(bot, "forge_approve", row["id"], "U0LEAD")
    assert EXECUTED == [] and (await rows(bot))[0]["status"] == "failed"


async def test_tampered_dialog_metadata_is_refused(bot):
    """A dialog whose private_metadata was edited is refused and stores nothing (C7)."""
    view = await open_dialog(bot)
    sealed = json.loads(view["private_metadata"])
    payload = json.loads(sealed["p"])
    payload["text"] = "test wipe beta"
    view["private_metadata"] = json.dumps(
        {"p": json.dumps(payload, sort_keys=True), "s": sealed["s"]}
    )
    response = await confirm(bot, view, "beta")
    assert response.json()["response_action"] == "errors" and await rows(bot) == []


def sealed_payload(view) -> dict:  # type: ignore[no-untyped-def]
    """What the dialog's signed private_metadata carries."""
    return json.loads(json.loads(view["private_metadata"])["p"])


async def test_the_dry_runs_scope_rides_the_sealed_dialog_into_the_request(bot):
    """The scope of the dry run made when the dialog opened is sealed beside its preview (cut to
    stay within Slack's 3,000 characters, the scope whole) and stored with the request; the dry
    run is not made again at submit."""
    view = await open_dialog(bot, text="test wipe scoped-long")
    payload = sealed_payload(view)
    assert len(view["private_metadata"]) <= 3000 and payload["preview"].endswith("…")
    assert payload["scope"] == {"generation": 0, "target": "scoped-long"}
    GENERATION[0] = 1  # a second dry run at submit would freeze this one
    await confirm(bot, view, "scoped-long")
    [row] = await rows(bot)
    assert json.loads(row["scope"]) == {"generation": 0, "target": "scoped-long"}


async def test_a_tampered_scope_in_the_dialog_is_refused(bot):
    """The seal covers the scope: a dialog whose frozen scope was edited stores nothing."""
    view = await open_dialog(bot, text="test wipe scoped")
    sealed = json.loads(view["private_metadata"])
    payload = json.loads(sealed["p"])
    payload["scope"]["generation"] = 7
    view["private_metadata"] = json.dumps(
        {"p": json.dumps(payload, sort_keys=True), "s": sealed["s"]}
    )
    response = await confirm(bot, view, "scoped")
    assert response.json()["response_action"] == "errors" and await rows(bot) == []


async def test_a_moved_scope_ends_stale_on_the_card_and_in_the_audit(bot):
    """The world moved between request and approval: nothing runs, the request ends 'stale', the
    card says request again, and the outcome audit row says scope: stale."""
    view = await open_dialog(bot, text="test wipe scoped")
    await confirm(bot, view, "scoped")
    GENERATION[0] = 1
    [row] = await rows(bot)
    await click(bot, "forge_approve", row["id"], "U0LEAD")
    [after] = await rows(bot)
    assert EXECUTED == [] and after["status"] == "stale" and "generation 1" in after["outcome"]
    card_ts = bot.slack.calls_to("chat.postMessage")[0].response["ts"]
    cards = [c.args["text"] for c in bot.slack.calls_to("chat.update") if c.args["ts"] == card_ts]
    assert "stale — request again" in cards[-1]
    [audit] = await rows(
        bot, "SELECT outcome, detail FROM forge.audit_log WHERE event = 'outcome' ORDER BY id"
    )
    assert (audit["outcome"], json.loads(audit["detail"])) == (
        "stale",
        {"approval_id": str(row["id"]), "scope": "stale"},
    )


async def test_failure_is_reported_and_never_retried(bot):
    """A backend refusal marks it failed; a timeout marks the outcome unknown; none is retried."""
    for target, status in (("fail", "failed"), ("hang", "outcome_unknown")):
        view = await open_dialog(bot, text=f"test wipe {target}")
        bot.slack.views.clear()
        await confirm(bot, view, target)
        pool = await bot.forge.store.pool()
        row = await pool.fetchrow(
            "SELECT * FROM forge.approvals WHERE params->>'target' = $1", target
        )
        bot.slack.calls.clear()
        await bot.client.click(
            "forge_approve", str(row["id"]), user="U0LEAD", message_ts=row["message_ts"]
        )
        await bot.settle()
        assert (
            await pool.fetchval("SELECT status FROM forge.approvals WHERE id = $1", row["id"])
        ) == status
    assert EXECUTED == ["fail", "hang"]


async def test_crash_while_executing_becomes_outcome_unknown(bot):
    """A request still executing past its lease (forge died) gets outcome unknown, never re-run."""
    row = await requested(bot)
    pool = await bot.forge.store.pool()
    await pool.execute(
        "UPDATE forge.approvals SET status = 'executing', decided_by = 'U0LEAD', "
        "lease_until = now() - interval '1 second'"
    )
    await bot.surface.approval_ui.sweep()
    assert (await rows(bot))[0]["status"] == "outcome_unknown" and EXECUTED == []
    await click(bot, "forge_approve", row["id"], "U0LEAD2")
    assert EXECUTED == []


async def test_destructive_commands_only_in_allowed_channels(bot):
    """Outside channels.destructive the command is refused before any dialog opens."""
    await bot.client.slash("test wipe alpha", user="U0OPS", channel="C0RANDOM")
    await bot.settle()
    assert not bot.slack.calls_to("views.open") and "may only be run in" in ephemeral_texts(bot)


async def test_viewer_cannot_request(bot):
    """A viewer gets a denial naming the operator role; no dialog opens."""
    await bot.client.slash("test wipe alpha", user="U0VIEW")
    await bot.settle()
    assert not bot.slack.calls_to("views.open") and "needs the operator role" in ephemeral_texts(
        bot
    )


async def test_dry_run_runs_without_approval(bot):
    """`--dry-run` shows the preview in the channel and changes nothing."""
    await bot.client.slash("test wipe alpha --dry-run", user="U0OPS")
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert "Would wipe 3 items" in json.dumps(post.args) and EXECUTED == []


async def test_approval_claim_is_atomic_in_sql(state_dsn):
    """50 concurrent claims of a request, real PostgreSQL: exactly one wins (I-test of UPDATE)."""
    from datetime import timedelta

    from bot.approvals.store import ApprovalStore
    from bot.state.store import StateStore

    store = StateStore(state_dsn, 5.0)
    approvals = ApprovalStore(store)
    request = await approvals.create(
        command="test wipe",
        text="test wipe alpha",
        params={"target": "alpha"},
        requester_id="U0OPS",
        channel_id="C0OPS",
        preview="x",
        ttl=timedelta(minutes=5),
    )
    wins = await asyncio.gather(
        *(approvals.claim(request.id, f"U0LEAD{i}", timedelta(minutes=1)) for i in range(50))
    )
    assert sum(1 for w in wins if w is not None) == 1
    assert await approvals.claim(request.id, "U0OPS", timedelta(minutes=1)) is None
    await store.aclose()
