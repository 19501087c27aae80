"""Structure guards: the registry, the manifest, module boundaries and safe defaults."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import yaml

import commands  # noqa: F401  (registers every command)
from bot.config.settings import Config
from bot.core.registry import REGISTRY, Risk, Role
from bot.slack import manifest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "slack-manifest.schema.json"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_commands_never_import_slack():
    """Handlers never see Slack: commands/ imports no slack_bolt, slack_sdk or Slack layer."""
    for path in (ROOT / "commands").rglob("*.py"):
        bad = {
            n
            for n in _imports(path)
            if n.split(".")[0] in {"slack_bolt", "slack_sdk"}
            or n.startswith(("bot.slack", "bot.http"))
        }
        assert not bad, f"{path.name} imports {bad}"


MARKUP = re.compile(
    r"<[@#!][\w{]"  # a mention, a channel link, a broadcast or a date
    r"|<(?:https?|mailto):"  # a link
    r"|```"  # a code block
    r"|`[^`\n]+`"  # inline code
    r"|(?<![\w*])\*[\w{][^*\n]*?(?<=[^\s*])\*(?![\w*])"  # bold
)


def _literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string literal but docstrings; an f-string with `{}` where its values go."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield (
                node.lineno,
                "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values),
            )
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings | inside
        ):
            yield node.lineno, node.value


def test_commands_write_no_slack_markup():
    """Handlers return plain text and typed cells: no mentions, links, code or bold in literals."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}"
        for path in (ROOT / "commands").rglob("*.py")
        for line, text in _literals(ast.parse(path.read_text(encoding="utf-8")))
        if MARKUP.search(text)
    ]
    assert not found, "mrkdwn in commands/ (use bot.text.cells):\n" + "\n".join(found)


def test_only_the_slack_renderer_writes_mrkdwn():
    """Outside bot/slack's renderer no module escapes for Slack or builds a mrkdwn object."""
    renderer = {ROOT / "bot" / "slack" / "render.py", ROOT / "bot" / "slack" / "mrkdwn.py"}
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "commands").rglob("*.py")]:
        if path in renderer:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        escapes = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "escape"
        ]
        mrkdwn = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "mrkdwn"]
        assert not escapes and not mrkdwn, path.name


def test_handlers_find_incidents_by_id_not_by_slack_thread():
    """The thread → incident mapping stays in the Slack layer; handlers get `ctx.incident_id`."""
    for path in (ROOT / "commands").rglob("*.py"):
        assert "thread_ts" not in path.read_text(encoding="utf-8"), path.name


def test_modules_stay_small_and_print_free():
    """Every module in bot/ and commands/ is under 400 lines and never print()s outside the CLI."""
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "commands").rglob("*.py")]:
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= 400, f"{path.name} has {lines} lines"
        if path.parent.name != "cli":
            calls = [
                n
                for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
            ]
            assert not calls, f"{path.name} prints"


def test_committed_manifest_matches_the_registry():
    """manifest.yml is exactly what `forge manifest` generates from the registry."""
    assert (ROOT / "manifest.yml").read_text(encoding="utf-8") == manifest.render(
        manifest.build(REGISTRY)
    )


def test_manifest_validates_against_slacks_schema():
    """Both the HTTP and the Socket Mode manifests validate against Slack's published schema."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    committed = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    jsonschema.validate(committed, schema)
    jsonschema.validate(manifest.build(REGISTRY, socket_mode=True), schema)


def test_manifest_declares_forge_interactivity_and_least_scopes():
    """One /forge command, interactivity on, and exactly the reviewed bot scopes."""
    doc = manifest.build(REGISTRY)
    assert [c["command"] for c in doc["features"]["slash_commands"]] == ["/forge"]
    assert doc["settings"]["interactivity"]["is_enabled"] is True
    assert doc["settings"]["socket_mode_enabled"] is False
    assert set(doc["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "chat:write",
        "chat:write.public",
        "channels:manage",
        "commands",
        "files:write",
        "usergroups:read",
    }
    socket = manifest.build(REGISTRY, socket_mode=True)
    assert (
        socket["settings"]["socket_mode_enabled"] is True
        and "url" not in socket["features"]["slash_commands"][0]
    )


def test_every_command_is_documented_and_sensibly_guarded():
    """Commands have a summary and example; writes need operator, destructive ones operator+."""
    assert {"help", "whoami", "audit", "health"} <= {s.name for s in REGISTRY.all()}
    for spec in REGISTRY.all():
        assert spec.summary and spec.examples, spec.name
        if spec.risk is not Risk.READ:
            assert spec.role >= Role.OPERATOR, spec.name
        if spec.risk is Risk.DESTRUCTIVE or spec.escalate is not None:
            assert spec.if_unknown, f"{spec.name}: what to check when its outcome is unknown"
    assert REGISTRY.get("audit").role is Role.ADMIN


def test_every_example_parses():
    """Every example in the help text is valid input for its command."""
    from bot.core.parser import parse

    for spec in REGISTRY.all():
        for example in spec.examples:
            assert parse(example, REGISTRY).spec is spec, example


def test_readme_documents_every_command():
    """The README names every registered command."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for spec in REGISTRY.all():
        assert f"`{spec.name}" in readme, spec.name


def test_request_verification_cannot_be_disabled():
    """The Slack app is always built with Bolt's request verification on."""
    source = (ROOT / "bot" / "slack" / "app.py").read_text(encoding="utf-8")
    assert (
        "request_verification_enabled=True" in source
        and "request_verification_enabled=False" not in source
    )


def test_default_config_grants_nothing_beyond_reading():
    """With no config file nobody holds operator or admin: fail closed."""
    config = Config()
    assert config.roles.operator == [] and config.roles.admin == [] and config.approvers == []
