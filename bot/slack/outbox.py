"""The one place forge calls Slack's Web API: the client, its retry policy, and error accounting."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.config.settings import Settings
from bot.core.result import Attachment
from bot.http import metrics
from bot.log import get_logger
from bot.slack.render import Message
from bot.text.redact import redact

log = get_logger(__name__)


def make_client(settings: Settings) -> AsyncWebClient:
    """AsyncWebClient on SLACK_API_URL: timeout, one pooled session, obeys 429 Retry-After twice."""
    token = settings.env.slack_bot_token
    timeout = settings.config.timeouts.slack
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    client = AsyncWebClient(
        token=token.get_secret_value() if token else None,
        base_url=settings.env.slack_api_url,
        timeout=int(timeout),
        session=session,
    )
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    return client


async def close_client(client: AsyncWebClient) -> None:
    """Close the client's pooled session."""
    if client.session is not None and not client.session.closed:
        await client.session.close()


class Outbox:
    """Posts, edits and uploads, secrets redacted; a failure is counted and logged, never raised."""

    def __init__(self, client: AsyncWebClient, timeout: float) -> None:
        self.client = client
        self._timeout = int(timeout)

    async def post(
        self, channel: str, message: Message, thread_ts: str | None = None
    ) -> tuple[str | None, str]:
        """Post a message; its ts, or None and the Slack error code."""
        response, error = await self._call(
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=channel,
                text=redact(message.text),
                blocks=redact.value(message.blocks),
                thread_ts=thread_ts,
                unfurl_links=False,
            ),
        )
        return (response["ts"] if response else None), error

    async def update(self, channel: str, ts: str, message: Message) -> bool:
        """Edit a message in place."""
        response, _ = await self._call(
            "chat.update",
            self.client.chat_update(
                channel=channel,
                ts=ts,
                text=redact(message.text),
                blocks=redact.value(message.blocks),
            ),
        )
        return response is not None

    async def delete(self, channel: str, ts: str) -> bool:
        """Remove a message forge posted."""
        response, _ = await self._call(
            "chat.delete", self.client.chat_delete(channel=channel, ts=ts)
        )
        return response is not None

    async def ephemeral(
        self, channel: str, user: str, message: Message, thread_ts: str | None = None
    ) -> bool:
        """A message only one user sees."""
        response, _ = await self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=redact(message.text),
                blocks=redact.value(message.blocks),
                thread_ts=thread_ts,
            ),
        )
        return response is not None

    async def respond(
        self,
        response_url: str,
        message: Message,
        *,
        in_channel: bool = False,
        replace: bool = False,
    ) -> bool:
        """Answer through an interaction's response_url (works where the bot is not a member);
        `replace` edits the message the interaction came from (an ephemeral one, say)."""
        webhook = AsyncWebhookClient(response_url, timeout=self._timeout)
        try:
            response = await webhook.send(
                text=redact(message.text),
                blocks=redact.value(message.blocks),
                response_type="in_channel" if in_channel else "ephemeral",
                replace_original=replace or None,
            )
        except (SlackClientError, OSError, TimeoutError) as exc:
            return self._failed("response_url", type(exc).__name__)
        return response.status_code == 200 or self._failed(
            "response_url", f"http_{response.status_code}"
        )

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str | None:
        """Open a modal; its view id, or None (an expired trigger, say)."""
        response, _ = await self._call(
            "views.open", self.client.views_open(trigger_id=trigger_id, view=redact.value(view))
        )
        return response["view"]["id"] if response else None

    async def update_view(self, view_id: str, view: dict[str, Any]) -> bool:
        """Replace an open modal's content."""
        response, _ = await self._call(
            "views.update", self.client.views_update(view_id=view_id, view=redact.value(view))
        )
        return response is not None

    async def publish_home(self, user: str, view: dict[str, Any]) -> bool:
        """Publish a user's Home tab."""
        response, _ = await self._call(
            "views.publish", self.client.views_publish(user_id=user, view=redact.value(view))
        )
        return response is not None

    async def workspace_url(self) -> str:
        """The workspace's address (https://team.slack.com/) for links to messages, or ""."""
        response, _ = await self._call("auth.test", self.client.auth_test())
        url = str(response.get("url") or "") if response else ""
        return url if url.endswith("/") or not url else url + "/"

    async def create_channel(self, name: str) -> tuple[str | None, str]:
        """A new public channel (bot as first member); its ID, or None and the Slack error code."""
        response, error = await self._call(
            "conversations.create", self.client.conversations_create(name=name)
        )
        return (response["channel"]["id"] if response else None), error

    async def invite(self, channel: str, users: list[str]) -> bool:
        """Add people to a channel forge created."""
        response, _ = await self._call(
            "conversations.invite", self.client.conversations_invite(channel=channel, users=users)
        )
        return response is not None

    async def upload(
        self, channel: str, attachment: Attachment, thread_ts: str | None = None
    ) -> bool:
        """Upload a file into the channel (or thread)."""
        response, _ = await self._call(
            "files.upload",
            self.client.files_upload_v2(
                channel=channel,
                content=redact.content(attachment.content),
                filename=attachment.filename,
                title=attachment.title or attachment.filename,
                thread_ts=thread_ts,
            ),
        )
        return response is not None

    async def upload_image(self, attachment: Attachment) -> str | None:
        """Upload a picture into no channel, for an image block to show; its file ID."""
        response, _ = await self._call(
            "files.upload",
            self.client.files_upload_v2(
                content=attachment.content,
                filename=attachment.filename,
                title=attachment.title or attachment.filename,
            ),
        )
        files = (response.get("files") if response is not None else None) or [{}]
        return files[0].get("id") or None

    async def _call(self, method: str, pending: Any) -> tuple[Any, str]:
        try:
            return await pending, ""
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown"))
            self._failed(method, error)
            return None, error
        except (SlackClientError, OSError, TimeoutError) as exc:
            self._failed(method, type(exc).__name__)
            return None, type(exc).__name__

    def _failed(self, method: str, error: str) -> bool:
        metrics.SLACK_ERRORS.labels(method=method, error=error).inc()
        log.warning("slack_api_error", method=method, error=error)
        return False
