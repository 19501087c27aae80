"""What `forge serve`, `playground`, `run`, `migrate` and `check` do once settings are loaded."""

from __future__ import annotations

import argparse
import re
import sys

from bot.cli.terminal import cli_user, to_json, to_text
from bot.config.settings import ConfigError, Settings
from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.errors import BackendError
from bot.core.forge import Forge
from bot.core.registry import Role
from bot.core.result import EXIT_FAILED, EXIT_OK
from bot.log import get_logger
from bot.text.redact import redact


async def serve_verb(settings: Settings, _: argparse.Namespace) -> int:
    """Run the Slack app until signalled; with no Slack credentials outside prod, the playground."""
    from bot.http.server import serve
    from bot.playground import session

    if session.wants_playground(settings):
        get_logger(__name__).info(
            "serving_playground",
            reason="no Slack credentials (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET) are set",
            note=(
                "forge answers a local Slack stand-in on 127.0.0.1; "
                "set the credentials to connect to Slack"
            ),
        )
        await session.run(settings, tell=_tell)
        return EXIT_OK
    await serve(settings)
    return EXIT_OK


async def playground_verb(settings: Settings, args: argparse.Namespace) -> int:
    """Run forge with the local Slack stand-in and its page until signalled; never in production."""
    from bot.playground import session

    if args.demo_clean:
        return await demo_clean(settings)
    await session.run(settings, public=args.public, demo=args.demo, tell=_tell)
    return EXIT_OK


async def demo_clean(settings: Settings) -> int:
    """`forge playground --demo-clean`: what the demo made, removed; another's left alone."""
    from bot.demo.places import Places

    places = Places.of(settings)
    try:
        removed = await places.clean()
    except Exception as exc:  # Redis, PostgreSQL or the disk: any failure is one line
        print(f"forge playground --demo-clean: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print("forge playground --demo-clean: removed " + "; ".join(removed))
    return EXIT_OK


def _tell(url: str) -> None:
    """Say where the playground is, for whoever started it in a terminal."""
    print(
        f"forge playground: open {url} in a browser (Ctrl-C stops it)", file=sys.stderr, flush=True
    )


async def run_verb(settings: Settings, args: argparse.Namespace) -> int:
    """Run one command; the terminal holds the admin role unless --as names a Slack user."""
    forge = Forge(settings)
    try:
        if not await forge.start():
            print(
                "forge: the state store is down; "
                "this run is not audited and write commands are refused.",
                file=sys.stderr,
            )
        actor = await _terminal_actor(forge, args.as_user)
        invocation = Invocation(" ".join(args.text), actor.user_id, None, source="cli")
        outcome = await forge.dispatcher.run(invocation, actor=actor)
    finally:
        await forge.aclose()
    if outcome.kind == "approval":
        print(
            f"forge: `{outcome.spec.name if outcome.spec else invocation.text}` is destructive: "
            "request it in Slack, where a second person approves it. "
            "Add --dry-run to see what it would do.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(
        redact(
            to_json(outcome, settings.environment)
            if args.json
            else to_text(outcome, settings.environment)
        )
    )
    for attachment in outcome.result.attachments if outcome.result else []:
        path = args.out / attachment.filename
        path.write_bytes(redact.content(attachment.content))
        print(f"wrote {path}", file=sys.stderr)
    return outcome.exit_code


async def _terminal_actor(forge: Forge, as_user: str | None) -> Actor:
    if as_user is None:
        return Actor(cli_user(), Role.ADMIN, approver=False, source="cli")
    if not re.fullmatch(r"[UW][A-Z0-9]{2,20}", as_user):
        raise ConfigError(f"--as {as_user!r}: expected a Slack user ID such as U012ABC")
    resolved = await forge.dispatcher.actor(as_user, "cli")
    return Actor(cli_user(), resolved.role, resolved.approver, "cli")


async def migrate_verb(settings: Settings, _: argparse.Namespace) -> int:
    """Apply pending migrations to the state store."""
    forge = Forge(settings)
    try:
        applied = await forge.store.migrate()
    except BackendError as exc:
        print(f"forge migrate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await forge.aclose()
    print("state store: " + (f"applied {', '.join(applied)}" if applied else "up to date"))
    return EXIT_OK


async def check_verb(settings: Settings, _: argparse.Namespace) -> int:
    """Config is valid (it loaded); now reach the state store, every backend and Slack once."""
    from commands.db.reserve import reservation
    from commands.health import run_checks

    print(f"config: ok ({_config_source(settings)}; environment {settings.environment})")
    forge = Forge(settings)
    try:
        store_up = await forge.store.ready(timeout=settings.config.timeouts.backend)
        print(f"state store: {'ok' if store_up else 'unreachable'}")
        ctx = forge.dispatcher.context(
            Actor(cli_user(), Role.ADMIN, source="cli"),
            Invocation("check", cli_user(), source="cli"),
        )
        checks = await run_checks(ctx)
        reserve = (await reservation(ctx))[1]
        slack_ok = await _check_slack(settings)
    finally:
        await forge.aclose()
    for check in checks:
        print(f"{check.name}: {check.status.value} ({check.detail})")
    print(f"postgres reserve: {reserve}")
    reached = store_up and slack_ok is not False and all(c.latency_ms is not None for c in checks)
    return EXIT_OK if reached else EXIT_FAILED


async def _check_slack(settings: Settings) -> bool | None:
    from bot.slack.outbox import close_client, make_client

    if settings.env.slack_bot_token is None:
        print("slack: not configured (SLACK_BOT_TOKEN unset)")
        return None
    client = make_client(settings)
    try:
        response = await client.auth_test()
    except Exception as exc:  # any failure is reported as one line
        print(f"slack: unreachable ({type(exc).__name__})")
        return False
    finally:
        await close_client(client)
    print(f"slack: ok (team {response.get('team')}, bot {response.get('user')})")
    return True


def _config_source(settings: Settings) -> str:
    """The config file forge read, or `defaults` when there is none."""
    path = settings.config_path
    return str(path) if path is not None and path.exists() else "defaults"
