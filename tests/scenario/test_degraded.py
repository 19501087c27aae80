"""A state store that is down at start: read-only commands still work; /readyz says not ready."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CONFIG, make_settings, running_forge

pytestmark = pytest.mark.integration


@pytest.fixture
async def storeless(slack):
    """forge whose state store points at a closed port."""
    settings = make_settings(
        CONFIG,
        forge_state_database_url="postgresql://postgres@127.0.0.1:9/forge",
        slack_api_url=slack.url,
    )
    async with running_forge(settings, slack) as h:
        yield h


async def test_readyz_is_503_and_healthz_200(storeless):
    """The process is up but not ready while the state store is unreachable."""
    assert (await storeless.get("/healthz"))[0] == 200
    status, body = await storeless.get("/readyz")
    assert status == 503 and json.loads(body) == {"ready": False, "state_store": "down"}


async def test_read_only_commands_still_answer(storeless):
    """`help` and `whoami` run without the state store."""
    await storeless.client.slash("whoami", user="U0OPS")
    [post] = await storeless.slack.wait_for("chat.postMessage")
    assert "operator" in json.dumps(post.args)


async def test_audit_reports_the_store_as_down_in_one_line(storeless):
    """A command that needs the store says so plainly, privately, with no stack trace."""
    await storeless.client.slash("audit", user="U0ADMIN")
    await storeless.settle()
    [reply] = storeless.slack.responses
    assert "state store" in reply["text"] and "Traceback" not in reply["text"]
    assert not storeless.slack.calls_to("chat.postMessage")
