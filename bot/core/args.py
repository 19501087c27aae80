"""Argument types shared by command models: durations like `2h`, `90m`, `7d`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"^(\d{1,6})([smhdw])$")


def parse_duration(value: object) -> timedelta:
    """`30s`, `15m`, `2h`, `7d` or `1w` as a timedelta; anything else is an error."""
    if isinstance(value, timedelta):
        return value
    found = DURATION.match(str(value).strip().lower())
    if not found:
        raise ValueError("expected a duration such as 30s, 15m, 2h or 7d")
    return timedelta(seconds=int(found.group(1)) * UNITS[found.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
