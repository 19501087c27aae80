"""The `forge` console script: serve, playground, run, migrate, check, manifest."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path

from bot.config.settings import ConfigError, Settings, load_settings
from bot.core.errors import ForgeError
from bot.core.result import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="forge", description="ChatOps for ClientForge CRM.")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser(
        "serve", help="run the Slack app (HTTP, or Socket Mode when SLACK_APP_TOKEN is set)"
    )
    playground = sub.add_parser(
        "playground",
        help="run forge with a local Slack stand-in at http://127.0.0.1:3100/playground",
    )
    playground.add_argument(
        "--public",
        action="store_true",
        help="listen on FORGE_HTTP_HOST instead of 127.0.0.1: anyone reaching it acts as anyone",
    )
    demo = playground.add_mutually_exclusive_group()
    demo.add_argument(
        "--demo",
        action="store_true",
        help="a small live ClientForge beside it, in places of its own (make playground runs this)",
    )
    demo.add_argument(
        "--demo-clean",
        action="store_true",
        help="remove the demo's Redis keys, database forge_demo_crm and folder, then exit",
    )
    run = sub.add_parser("run", help='run one command from the terminal, e.g. forge run "health"')
    run.add_argument("text", nargs="+", help="the command text, as typed after /forge")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument(
        "--as", dest="as_user", metavar="USER_ID", help="run with this Slack user's role"
    )
    run.add_argument(
        "--out", type=Path, default=Path("."), help="where files the command produces are written"
    )
    run.add_argument(
        "--break-glass",
        action="store_true",
        help="run a destructive command without a second approver (break_glass.users only)",
    )
    run.add_argument("--reason", help="why the glass is broken (required with --break-glass)")
    run.add_argument(
        "--yes", action="store_true", help="with --break-glass: skip typing the target"
    )
    sub.add_parser("migrate", help="apply the state store's schema migrations")
    sub.add_parser("check", help="validate the configuration and reach every backend once")
    manifest = sub.add_parser(
        "manifest", help="print the Slack app manifest generated from the registry"
    )
    manifest.add_argument("--url", default=None, help="public URL of /slack/events")
    manifest.add_argument(
        "--socket-mode", action="store_true", help="a Socket Mode manifest (no URLs)"
    )
    manifest.add_argument("--check", type=Path, metavar="FILE", help="exit 1 unless FILE matches")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, load the settings and run one verb."""
    args = parser().parse_args(argv)
    if args.verb == "manifest":
        return manifest_verb(args)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"forge: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.verb == "run" and offline(args):
        return help_verb(settings, args)
    gc.freeze()  # what start-up built lives until exit: later passes need not walk it
    gc.enable()
    from bot.cli import logs
    from bot.text.redact import remember

    logs.configure(
        remember(settings.secrets()), "INFO" if args.verb in ("serve", "playground") else "WARNING"
    )
    try:
        if args.verb == "run" and (args.break_glass or args.reason or args.yes):
            return asyncio.run(break_glass(settings, args))
        return asyncio.run(_verbs()[args.verb](settings, args))
    except ConfigError as exc:
        print(f"forge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED


def offline(args: argparse.Namespace) -> bool:
    """`forge run help …` as the terminal's own admin: it reads the registry and nothing else."""
    return " ".join(args.text).split()[:1] == ["help"] and args.as_user is None and not args.json


def help_verb(settings: Settings, args: argparse.Namespace) -> int:
    """Help from the registry alone: no state store, backend, logger or event loop is started.

    It is not audited: like `forge --help` it shows what the code holds, not what ClientForge does.
    """
    from bot.cli.terminal import cli_user, error_text, result_text
    from bot.core.context import Actor
    from bot.core.parser import parse
    from bot.core.registry import REGISTRY, Role
    from commands.meta import help_result

    actor = Actor(cli_user(), Role.ADMIN, approver=False, source="cli")
    try:
        parsed = parse(" ".join(args.text), REGISTRY)
    except ForgeError as exc:
        print(f"forge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = help_result(REGISTRY, actor, getattr(parsed.args, "topic", None))
    except ForgeError as exc:
        print(error_text(exc.text))
        return EXIT_FAILED
    print(result_text(result, settings.environment))
    return EXIT_OK


async def break_glass(settings: Settings, args: argparse.Namespace) -> int:
    """`forge run --break-glass`; --reason or --yes without it is a usage error."""
    if not args.break_glass:
        print("forge: --reason and --yes go with --break-glass; nothing was run.", file=sys.stderr)
        return EXIT_USAGE
    if args.as_user:
        print(
            "forge: --break-glass runs as your Unix user, never --as; nothing was run.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from bot.cli.break_glass import break_glass_verb

    return await break_glass_verb(settings, args)


def _verbs() -> dict:
    from bot.cli import verbs

    return {
        "serve": verbs.serve_verb,
        "playground": verbs.playground_verb,
        "run": verbs.run_verb,
        "migrate": verbs.migrate_verb,
        "check": verbs.check_verb,
    }


def manifest_verb(args: argparse.Namespace) -> int:
    """Print the manifest, or compare it with a file."""
    import commands  # noqa: F401
    from bot.core.registry import REGISTRY
    from bot.slack import manifest

    text = manifest.render(
        manifest.build(REGISTRY, url=args.url or manifest.DEFAULT_URL, socket_mode=args.socket_mode)
    )
    if args.check:
        same = args.check.exists() and args.check.read_text(encoding="utf-8") == text
        print(
            f"{args.check}: "
            f"{'up to date' if same else 'differs from the registry; run forge manifest'}"
        )
        return EXIT_OK if same else EXIT_FAILED
    sys.stdout.write(text)
    return EXIT_OK
