"""The process environment and a `.env` file as one mapping, the way pydantic-settings read them.

Names match case-insensitively; the environment wins over the file. The file takes `KEY=VALUE`
lines, optionally `export`ed, with single- or double-quoted values and `#` comments. This small
reader replaced pydantic-settings, whose import alone was a quarter of `forge run help`'s start.
"""

from __future__ import annotations

import os
from pathlib import Path


def environment(names: list[str], env_file: str | Path | None = ".env") -> dict[str, str]:
    """The values of these (lower-case) names: the environment's, else the `.env` file's."""
    found = _dotenv(Path(env_file)) if env_file is not None else {}
    found |= {k.lower(): v for k, v in os.environ.items()}
    return {name: found[name] for name in names if name in found}


def _dotenv(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            values[key.strip().lower()] = _unquoted(value.strip())
    return values


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value.split(" #", 1)[0].rstrip()
