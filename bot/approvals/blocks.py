"""Approval messages: the card an approver acts on, and the typed-confirmation dialog."""

from __future__ import annotations

from typing import Any

from bot.core.result import Result
from bot.slack.render import Message, context, field_sections, message, section
from bot.text.cells import Code, Strong, Text, Time, User, plain, rich

APPROVAL_STATES = {
    "pending": "⏳ Waiting for an approver",
    "executing": "⏳ Approved by {by} · running",
    "succeeded": "✅ Approved by {by} · done",
    "succeeded_scoped": "✅ Approved by {by} · done on the approved scope",
    "stale": "⚠️ Approved by {by} · stale — request again",
    "failed": "🔴 Approved by {by} · failed",
    "outcome_unknown": "⚠️ Approved by {by} · outcome unknown",
    "denied": "🚫 Denied by {by}",
    "cancelled": "🚫 Cancelled by {by}",
    "expired": "⌛ Expired without approval",
}


def approval_state(approval: Any) -> Text:
    """`✅ Approved by @lead · done`: where the request stands, and who decided."""
    scoped = approval.status == "succeeded" and getattr(approval, "scope", None) is not None
    state = "succeeded_scoped" if scoped else approval.status
    before, marked, after = APPROVAL_STATES[state].partition("{by}")
    by = User(approval.decided_by) if approval.decided_by else ""
    return rich(before, by, after) if marked else before


def approval_card(approval: Any, environment: str) -> Message:
    """The card an approver acts on: exactly what will run, the dry run, who asked, until when."""
    head = rich("⚠️ Approval needed: ", Code(approval.text), f" · {environment}")
    state = approval_state(approval)
    blocks = [
        section(Strong(head)),
        field_sections(
            [
                ("Requested by", User(approval.requester_id)),
                ("Expires", Time(approval.expires_at)),
                ("Request", Code(approval.short_id)),
                ("Arguments", Code(_arguments(approval.params))),
            ]
        )[0],
        section(rich(Strong("Dry run"), "\n", approval.preview)),
        context(state),
    ]
    if approval.outcome and approval.status not in ("pending", "executing"):
        blocks.append(section(rich(Strong("Outcome"), "\n", approval.outcome)))
    if approval.status == "pending":
        blocks.append(_buttons(str(approval.id)))
    return message(rich(head, ": ", state), blocks)


def _buttons(value: str) -> dict[str, Any]:
    """Approve and Deny, carrying the request's id."""
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "forge_approve",
                "value": value,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "forge_deny",
                "value": value,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Deny"},
            },
        ],
    }


def _arguments(params: dict[str, Any]) -> str:
    """The arguments that are set, as key=value pairs."""
    shown = {k: v for k, v in params.items() if v not in (None, False)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "none"


def confirm_modal(
    command: str, metadata: str, preview: Result | None = None, expected: str = "", error: Text = ""
) -> dict[str, Any]:
    """The typed-confirmation dialog: loading, then the dry run and a field to type the target."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "forge_confirm",
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Confirm destructive step"},
        "close": {"type": "plain_text", "text": "Cancel"},
    }
    intro = section(
        rich(Code(command), " is destructive. After you confirm, a second person must approve it.")
    )
    if error:
        view["blocks"] = [intro, section(rich("❌ ", error))]
        return view
    if preview is None:
        view["blocks"] = [intro, section("⏳ Computing the dry run…")]
        return view
    blocks = [intro, section(rich(Strong("Dry run"), "\n", preview.summary))]
    blocks.extend(field_sections(preview.fields)[:2])
    blocks.append(_typed_input(expected))
    view["blocks"] = blocks
    view["submit"] = {"type": "plain_text", "text": "Request approval"}
    return view


def _typed_input(expected: str) -> dict[str, Any]:
    """The field where the requester types the target."""
    return {
        "type": "input",
        "block_id": "confirm",
        "label": {"type": "plain_text", "text": f"Type {plain(expected)} to confirm"[:2000]},
        "element": {
            "type": "plain_text_input",
            "action_id": "typed",
            "placeholder": {"type": "plain_text", "text": expected[:150]},
        },
    }
