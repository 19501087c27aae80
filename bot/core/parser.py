"""One parser for Slack text and the terminal: normalise, split, bind to the args model."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.core.errors import UsageError
from bot.core.registry import Args, CommandSpec, Registry, field_extra
from bot.text.cells import Code, Text, rich

MAX_INPUT_CHARS = 1000
MAX_TOKENS = 40
MAX_TOKEN_CHARS = 200

_REPLACEMENTS = {
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u2014": "--",
    "\u2013": "--",
    "\u2212": "-",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_TRANSLATION = str.maketrans(_REPLACEMENTS)


@dataclass(frozen=True)
class Parsed:
    """A command and its validated arguments."""

    spec: CommandSpec
    args: Args
    text: str


def normalise(text: str) -> str:
    """Undo Slack's typography (smart quotes, em-dashes) and refuse unsafe input."""
    if len(text) > MAX_INPUT_CHARS:
        raise UsageError(f"Input is too long ({len(text)} characters; at most {MAX_INPUT_CHARS}).")
    text = text.translate(_TRANSLATION)
    if _CONTROL.search(text):
        raise UsageError("Input contains control characters; type the command on one line.")
    return text.strip()


def split(text: str) -> list[str]:
    """Shell-like words: quotes group, nothing is expanded."""
    try:
        tokens = shlex.split(text, posix=True)
    except ValueError as exc:
        raise UsageError(f"Could not read the input: {exc}.") from exc
    if len(tokens) > MAX_TOKENS:
        raise UsageError(f"Too many words ({len(tokens)}; at most {MAX_TOKENS}).")
    if any(len(t) > MAX_TOKEN_CHARS for t in tokens):
        raise UsageError(f"A word is longer than {MAX_TOKEN_CHARS} characters.")
    return tokens


def parse(text: str, registry: Registry) -> Parsed:
    """Text after `/forge` into a command and typed arguments."""
    clean = normalise(text)
    tokens = split(clean) or ["help"]
    spec, rest = registry.resolve(tokens)
    values = bind(spec, rest)
    try:
        args = spec.args.model_validate(values)
    except ValidationError as exc:
        raise UsageError(_first_error(exc), spec.usage) from None
    return Parsed(spec, args, " ".join([spec.name, *map(_quote, rest)]))


def bind(spec: CommandSpec, tokens: list[str]) -> dict[str, Any]:
    """Assign words to the model's options and positionals; values stay strings."""
    options = {"--" + n.replace("_", "-"): (n, f) for n, f in spec.options()}
    positionals = spec.positionals()
    values: dict[str, Any] = {}
    loose: list[str] = []
    i, only_positional = 0, False
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if only_positional or not token.startswith("--"):
            loose.append(token)
            continue
        if token == "--":
            only_positional = True
            continue
        flag, eq, inline = token.partition("=")
        if flag not in options:
            raise UsageError(rich("Unknown option ", Code(flag), "."), spec.usage)
        name, field = options[flag]
        if name in values:
            raise UsageError(rich("Option ", Code(flag), " given twice."), spec.usage)
        if field.annotation is bool:
            values[name] = inline if eq else True
        elif eq:
            values[name] = inline
        elif i < len(tokens):
            values[name] = tokens[i]
            i += 1
        else:
            raise UsageError(rich("Option ", Code(flag), " needs a value."), spec.usage)
    _assign_positionals(spec, positionals, loose, values)
    return values


def _assign_positionals(
    spec: CommandSpec, positionals: list, loose: list[str], values: dict
) -> None:
    for name, field in positionals:
        if not loose:
            break
        if field_extra(field).get("rest"):
            values[name] = " ".join(loose)
            loose = []
        else:
            values[name] = loose.pop(0)
    if loose:
        raise UsageError(rich("Unexpected argument ", Code(loose[0]), "."), spec.usage)


def _first_error(exc: ValidationError) -> Text:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return rich("Missing ", Code(where), ".")
    message = str(err["msg"]).removeprefix("Value error, ").rstrip(".")
    if not where:  # a rule across arguments: its message says it all
        return message + "."
    return rich("Bad ", Code(where.replace("_", "-")), f": {message}.")


def _quote(token: str) -> str:
    return shlex.quote(token) if token else "''"
