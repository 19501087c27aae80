"""Roles: nested grants by user ID, user group or "*"; approver separate; failures grant nothing."""

from __future__ import annotations

import json

import pytest

from bot.config.settings import Config
from bot.core.permissions import Permissions
from bot.core.registry import Role
from tests.conftest import make_settings, running_forge


class Groups:
    """A group directory with fixed members that can be made to fail."""

    def __init__(self, members: dict[str, list[str]], failing: set[str] = frozenset()) -> None:
        self.members_of = members
        self.failing = failing
        self.calls = 0

    async def members(self, group_id: str, fresh: bool = False) -> frozenset[str]:
        """Members, or an error for a failing group."""
        self.calls += 1
        if group_id in self.failing:
            raise ConnectionError("slack down")
        return frozenset(self.members_of.get(group_id, []))


CONFIG = Config.model_validate(
    {
        "roles": {
            "viewer": ["*"],
            "operator": ["U0OPS", "S0ONCALL"],
            "admin": ["U0ADMIN", "S0ADMINS"],
        },
        "approvers": ["U0LEAD", "S0LEADS"],
    }
)


@pytest.mark.parametrize(
    "user, role, approver",
    [
        ("U0ADMIN", Role.ADMIN, False),
        ("U0OPS", Role.OPERATOR, False),
        ("U0ONCALL", Role.OPERATOR, False),
        ("U0BOSS", Role.ADMIN, False),
        ("U0LEAD", Role.VIEWER, True),
        ("U0LEADMEMBER", Role.VIEWER, True),
        ("U0RANDOM", Role.VIEWER, False),
    ],
)
async def test_roles_resolve_by_id_group_and_star(user, role, approver):
    """Direct IDs, group membership and "*" give the highest matching role; approver is separate."""
    groups = Groups({"S0ONCALL": ["U0ONCALL"], "S0ADMINS": ["U0BOSS"], "S0LEADS": ["U0LEADMEMBER"]})
    grant = await Permissions(CONFIG, groups).resolve(user)
    assert (grant.role, grant.approver, grant.doubt) == (role, approver, None)


async def test_nobody_without_star_has_no_role():
    """Without "*", an unknown user holds no role at all."""
    config = Config.model_validate({"roles": {"viewer": ["U0VIEW"]}})
    assert (await Permissions(config, Groups({})).resolve("U0OTHER")).role is None


async def test_failed_group_lookup_grants_nothing_and_says_why():
    """If Slack cannot say who is in a group, that group's role is withheld, the doubt reported."""
    groups = Groups({"S0ONCALL": ["U0ONCALL"]}, failing={"S0ADMINS"})
    grant = await Permissions(CONFIG, groups).resolve("U0BOSS")
    assert grant.role is Role.VIEWER and grant.doubt and "Can't verify permissions" in grant.doubt


@pytest.mark.integration
async def test_group_denial_through_slack_names_the_lookup_failure(slack, state_dsn):
    """An admin-group member is refused `audit` clearly when usergroups fails; help still works."""
    settings = make_settings(CONFIG, forge_state_database_url=state_dsn, slack_api_url=slack.url)
    slack.usergroups = {"S0ONCALL": [], "S0ADMINS": ["U0BOSS"]}
    slack.fail("usergroups.users.list", status=500, error="internal_error", times=10)
    async with running_forge(settings, slack) as harness:
        await harness.client.slash("audit", user="U0BOSS")
        await harness.settle()
        assert "Can't verify permissions" in harness.slack.responses[0]["text"]
        await harness.client.slash("whoami", user="U0BOSS")
        [post] = await harness.slack.wait_for("chat.postMessage")
        assert "viewer" in json.dumps(post.args)


async def test_slack_group_directory_caches_members(slack):
    """usergroups.users.list is called once per group within the cache window."""
    from bot.slack.groups import SlackGroupDirectory
    from bot.slack.outbox import close_client, make_client

    slack.usergroups = {"S0ONCALL": ["U0ONCALL"]}
    client = make_client(make_settings(slack_api_url=slack.url))
    directory = SlackGroupDirectory(client)
    for _ in range(3):
        assert await directory.members("S0ONCALL") == frozenset({"U0ONCALL"})
    await close_client(client)
    assert len(slack.calls_to("usergroups.users.list")) == 1
