"""The one command registry: dispatch, help, the CLI and the manifest all read it."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from bot.core.errors import UnknownCommand

if TYPE_CHECKING:
    from bot.core.context import Context
    from bot.core.result import Result


class Role(enum.IntEnum):
    """Nested roles: a higher role may do all a lower one may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name as the config file spells it."""
        return self.name.lower()


class Risk(enum.Enum):
    """What a command does to the system it operates."""

    READ = "read"
    WRITE = "write"
    DESTRUCTIVE = "destructive"


class Args(BaseModel):
    """Base of every argument model: unknown fields are errors, values are stripped."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, frozen=True, defer_build=True
    )


class NoArgs(Args):
    """A command that takes no arguments."""


def positional(default: Any = ..., *, rest: bool = False, help: str = "", **kw: Any) -> Any:
    """A positional argument; `rest` takes every remaining word."""
    return Field(
        default, description=help, json_schema_extra={"positional": True, "rest": rest}, **kw
    )


def option(default: Any = None, *, help: str = "", **kw: Any) -> Any:
    """A `--flag value` option (or a `--switch` when the field is a bool)."""
    return Field(default, description=help, **kw)


Handler = Callable[["Context", Any], Awaitable["Result"]]
Confirm = Callable[[Any], str]


@dataclass(frozen=True)
class CommandSpec:
    """Everything forge knows about one command."""

    words: tuple[str, ...]
    handler: Handler
    args: type[Args]
    summary: str
    role: Role
    risk: Risk
    examples: tuple[str, ...] = ()
    timeout: float = 60.0
    slow: bool = False
    preview: Handler | None = None
    confirm: Confirm | None = None
    escalate: Callable[[Any], bool] | None = None
    if_unknown: str = ""

    def risk_for(self, args: Any) -> Risk:
        """This run's risk: destructive when its arguments escalate it (`db vacuum --full`)."""
        return Risk.DESTRUCTIVE if self.escalate is not None and self.escalate(args) else self.risk

    @property
    def name(self) -> str:
        """The command's words joined, as typed after `/forge`."""
        return " ".join(self.words)

    def positionals(self) -> list[tuple[str, Any]]:
        """The args model's positional fields, in declaration order."""
        return [
            (n, f) for n, f in self.args.model_fields.items() if field_extra(f).get("positional")
        ]

    def options(self) -> list[tuple[str, Any]]:
        """The args model's `--flag` fields."""
        return [
            (n, f)
            for n, f in self.args.model_fields.items()
            if not field_extra(f).get("positional")
        ]

    @property
    def usage(self) -> str:
        """One-line usage, e.g. `audit [--user U] [--limit N]`."""
        parts = [self.name]
        for name, f in self.positionals():
            label = f"{name}…" if field_extra(f).get("rest") else name
            parts.append(f"<{label}>" if f.is_required() else f"[{label}]")
        for name, f in self.options():
            flag = "--" + name.replace("_", "-")
            parts.append(f"[{flag}]" if f.annotation is bool else f"[{flag} {name.upper()}]")
        return " ".join(parts)


def field_extra(field: Any) -> dict[str, Any]:
    """A model field's forge markers (positional, rest)."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


class Registry:
    """Commands by their words."""

    def __init__(self) -> None:
        self._commands: dict[tuple[str, ...], CommandSpec] = {}

    def add(self, spec: CommandSpec) -> None:
        """Register a command; its words must be new."""
        if spec.words in self._commands:
            raise ValueError(f"command {spec.name!r} registered twice")
        self._commands[spec.words] = spec

    def all(self) -> list[CommandSpec]:
        """Every command, in name order."""
        return sorted(self._commands.values(), key=lambda s: s.name)

    def get(self, name: str) -> CommandSpec | None:
        """The command with exactly these words, if any."""
        return self._commands.get(tuple(name.split()))

    def resolve(self, tokens: list[str]) -> tuple[CommandSpec, list[str]]:
        """The longest registered command that prefixes the tokens, and the tokens left."""
        for n in range(min(len(tokens), 3), 0, -1):
            spec = self._commands.get(tuple(t.lower() for t in tokens[:n]))
            if spec:
                return spec, tokens[n:]
        raise UnknownCommand(" ".join(tokens[:2]), self.suggest(tokens))

    def suggest(self, tokens: list[str]) -> list[str]:
        """Close command names for a mistyped one."""
        names = [s.name for s in self.all()]
        for n in (2, 1):
            typed = " ".join(tokens[:n]).lower()
            close = difflib.get_close_matches(typed, names, n=3, cutoff=0.6)
            if close:
                return close
        family = [s.name for s in self.all() if tokens and s.words[0] == tokens[0].lower()]
        return family[:3]


REGISTRY = Registry()


def command(
    words: str,
    *,
    summary: str,
    args: type[Args] = NoArgs,
    role: Role = Role.VIEWER,
    risk: Risk = Risk.READ,
    examples: tuple[str, ...] = (),
    timeout: float = 60.0,
    slow: bool = False,
    preview: Handler | None = None,
    confirm: Confirm | None = None,
    escalate: Callable[[Any], bool] | None = None,
    if_unknown: str = "",
    registry: Registry | None = None,
) -> Callable[[Handler], Handler]:
    """Declare a command: its words, argument model, help, role and risk.

    A destructive command also names its `preview` (a read-only dry run, also what `--dry-run`
    shows) and `confirm`, the text the requester must type to confirm (usually the target's name).
    `escalate` makes a run destructive when it holds for the arguments; such a command needs the
    preview and confirmation too. `if_unknown` names what to check before requesting it again when
    its outcome is unknown (forge stopped while it ran).
    """
    if (risk is Risk.DESTRUCTIVE or escalate is not None) and (preview is None or confirm is None):
        raise ValueError(f"destructive command {words!r} needs a preview and a confirmation text")

    def register(handler: Handler) -> Handler:
        spec = CommandSpec(
            tuple(words.split()),
            handler,
            args,
            summary,
            role,
            risk,
            examples,
            timeout,
            slow,
            preview,
            confirm,
            escalate,
            if_unknown,
        )
        (registry or REGISTRY).add(spec)
        return handler

    return register
