"""The scope a destructive command's dry run showed, frozen with the request and re-checked at run.

A handler's preview returns a `Scope` on its Result (what exactly it would act on: a pid and when
that session connected, a table's oid, a dump's checksum…). The approval engine stores it with the
request and hands it back on `ctx.scope` when the approved command runs; the handler then acts on
that scope only, or raises `StaleScope` and touches nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.errors import CommandError
from bot.text.cells import Text, rich

Fact = str | int | float | bool | None


@dataclass(frozen=True)
class Scope:
    """What the preview showed, as named JSON values: `Scope.of(pid=4242, backend_start=…)`."""

    facts: tuple[tuple[str, Fact], ...]

    @classmethod
    def of(cls, **facts: Fact) -> Scope:
        """A scope from keyword facts; values must be JSON scalars."""
        for name, value in facts.items():
            if not isinstance(value, Fact):
                raise TypeError(f"scope fact {name} is {type(value).__name__}, not a JSON scalar")
        return cls(tuple(sorted(facts.items())))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Scope | None:
        """The scope as stored, or None when the request froze none."""
        return None if data is None else cls.of(**dict(data))

    def to_json(self) -> dict[str, Fact]:
        """The facts as a JSON object."""
        return dict(self.facts)

    def __getitem__(self, name: str) -> Fact:
        return dict(self.facts)[name]

    def get(self, name: str, default: Fact = None) -> Fact:
        """One fact, or `default` when the scope lacks it."""
        return dict(self.facts).get(name, default)

    def canonical(self) -> str:
        """Canonical JSON, for hashing with the request."""
        return json.dumps(self.to_json(), sort_keys=True)


class StaleScope(CommandError):
    """The world moved since the preview: the approved scope is gone, so nothing was done."""

    def __init__(self, what_changed: Text) -> None:
        super().__init__(rich("Stale: ", what_changed, " Nothing was done; request it again."))
        self.what_changed = what_changed
