"""The Slack side of HTTP mode for tests: the playground's signed-request client, re-exported."""

from bot.playground.slack_bodies import TEAM_DOMAIN, VERIFICATION_TOKEN
from bot.playground.slack_requests import (
    DEFAULT_MESSAGE_TS,
    USER_AGENT,
    Response,
    SlackClient,
    block_action_body,
    content_type,
    event_body,
    make_trigger_id,
    sign,
    slash_body,
    view_submission_body,
)

__all__ = [
    "DEFAULT_MESSAGE_TS",
    "TEAM_DOMAIN",
    "USER_AGENT",
    "VERIFICATION_TOKEN",
    "Response",
    "SlackClient",
    "block_action_body",
    "content_type",
    "event_body",
    "make_trigger_id",
    "sign",
    "slash_body",
    "view_submission_body",
]
