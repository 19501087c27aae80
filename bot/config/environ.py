"""The process environment and a `.env` file as one mapping, the way pydantic-settings read them.

Names match case-insensitively; the environment wins over the file. The file takes `KEY=VALUE`
lines, optionally `export`ed, with single- or double-quoted values and `#` comments; `${NAME}` in an
unquoted or double-quoted value is the environment's or an earlier line's NAME. This small
reader replaced pydantic-settings, whose import alone was a quarter of `forge run help`'s start.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
            values[key.strip().lower()] = _value(value.strip(), values)
    return values


def _value(raw: str, earlier: dict[str, str]) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    quoted = len(raw) >= 2 and raw[0] == raw[-1] == '"'
    text = raw[1:-1] if quoted else raw.split(" #", 1)[0].rstrip()
    return REFERENCE.sub(lambda m: _lookup(m.group(1), earlier), text)


def _lookup(name: str, earlier: dict[str, str]) -> str:
    return os.environ.get(name, earlier.get(name.lower(), ""))
