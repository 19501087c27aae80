"""`logs name [--tail N] [--grep REGEX]`: allowlisted ClientForge logs, redacted, timed grep."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
from pathlib import Path

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Attachment, Result, Status
from bot.text.cells import Code, Emphasis, Pre, Text, lines, rich
from bot.text.redact import redact

# name → file in FORGE_LOG_DIR; nothing else is ever opened
# (clientforge.md §2 LOG_FILE_PATH, §9.13 backup.log)
LOG_FILES = {
    "app": "app.log",
    "backend": "backend.log",
    "backup": "backup.log",
    "error": "error.log",
    "combined": "combined.log",
    "worker": "worker.log",
}
READ_BYTES = 4 << 20
LINE_CHARS = 2000
INLINE_LINES, INLINE_CHARS = 30, 2500
GREP_DEADLINE_S = 2.0
PATTERN_CHARS = 200
UNBOUNDED = (
    100  # a repeat allowing this many or more (`+`, `*`, `{2,}`, `{1,500}`) counts as unbounded
)
ERRORISH = re.compile(r"\b(ERROR|FATAL|CRITICAL|Unhandled|Exception)\b")
# the grep runs in a child interpreter that is killed at the deadline:
# a pattern can never hang forge
GREP_CHILD = (
    "import re,sys\np=re.compile(sys.argv[1])\n"
    "for i,l in enumerate(sys.stdin.buffer.read().decode('utf-8','replace').split('\\n')):\n"
    " if p.search(l):\n  sys.stdout.write(str(i)+'\\n')\n"
)


def _usage(kind: str, message: str) -> PydanticCustomError:
    """A validation error whose message the parser shows as it is."""
    return PydanticCustomError(kind, message)


def nested_quantifier(pattern: str) -> bool:
    """True for a repeated group that itself repeats, or a backreference: ReDoS shapes."""
    try:
        tree = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except re.error:
        return False
    return _risky(list(tree), 1)


def _children(name: str, av: object) -> list:
    """The sub-patterns of one sre parse-tree node."""
    if name == "SUBPATTERN":
        return [list(av[-1])]  # type: ignore[index]
    if name == "BRANCH":
        return [list(b) for b in av[1]]  # type: ignore[index]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [list(av[1])]  # type: ignore[index]
    return [list(av)] if name == "ATOMIC_GROUP" else []  # type: ignore[call-overload]


def _risky(items: list, enclosing: int) -> bool:
    """Walk sre's parse tree for a repeat in a repeat, either unbounded, or a group reference.

    `enclosing` is the largest repeat count around the node (1 outside any repeat).
    """
    for op, av in items:
        name = str(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            return True
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            high = av[1]
            if min(high, enclosing) > 1 and max(high, enclosing) >= UNBOUNDED:
                return True
            if _risky(list(av[2]), max(high, enclosing)):
                return True
        elif any(_risky(child, enclosing) for child in _children(name, av)):
            return True
    return False


class LogsArgs(Args):
    """Arguments of `logs`."""

    name: str = positional(help="which log: " + ", ".join(LOG_FILES))
    tail: int = option(100, ge=1, le=1000, help="last N lines (after --grep), 1 to 1000")
    grep: str | None = option(
        None, help="keep lines matching this regular expression (Python syntax)"
    )

    @field_validator("name")
    @classmethod
    def _allowlisted(cls, name: str) -> str:
        if name.lower() not in LOG_FILES:
            raise _usage(
                "log_name",
                f'"{name[:40]}" is not a log forge reads; choose one of {", ".join(LOG_FILES)}',
            )
        return name.lower()

    @field_validator("grep")
    @classmethod
    def _bounded(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        if not pattern or len(pattern) > PATTERN_CHARS:
            raise _usage("grep", f"the pattern must be 1 to {PATTERN_CHARS} characters")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _usage("grep", f"not a valid regular expression ({exc.msg})") from None
        if nested_quantifier(pattern):
            raise _usage(
                "grep",
                'nested repeats such as "(a+)+" and backreferences can take exponential time; '
                "simplify the pattern",
            )
        return pattern


def log_path(directory: Path, name: str) -> Path:
    """The allowlisted file inside FORGE_LOG_DIR, refusing anything that resolves outside it."""
    try:
        base = directory.resolve(strict=True)
    except OSError:
        raise CommandError(
            rich("FORGE_LOG_DIR ", Code(str(directory)), " does not exist on forge's host.")
        ) from None
    path = (base / LOG_FILES[name]).resolve()
    if path.parent != base:
        raise CommandError(
            rich(Code(LOG_FILES[name]), " is a link that leads outside FORGE_LOG_DIR; refused.")
        )
    return path


def read_tail(path: Path, limit: int | None = None) -> tuple[list[str], int, bool]:
    """The file's last READ_BYTES as lines (regular files, no symlinks), its size, if it was cut."""
    limit = limit or READ_BYTES
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CommandError(
            rich(Code(path.name), " does not exist in FORGE_LOG_DIR (yet).")
        ) from None
    except OSError as exc:
        raise CommandError(rich(Code(path.name), f" cannot be opened: {exc.strerror}.")) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CommandError(rich(Code(path.name), " is not a regular file; refused."))
        cut = info.st_size > limit
        handle.seek(max(0, info.st_size - limit))
        raw = handle.read(limit)
    lines = raw.decode("utf-8", "replace").split("\n")
    if cut:
        lines = lines[1:]
    if lines and lines[-1] == "":
        lines.pop()
    return lines, info.st_size, cut


async def read(path: Path, timeout: float) -> tuple[list[str], int, bool]:
    """read_tail in a thread within the timeout: a hung network mount is reported, not waited on."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(read_tail, path), timeout)
    except TimeoutError:
        raise CommandError(
            rich(
                "Reading ",
                Code(path.name),
                f" took longer than {timeout:g} s; is FORGE_LOG_DIR on a hung mount?",
            )
        ) from None


def clean(lines: list[str]) -> list[str]:
    """Each line cut to LINE_CHARS and redacted, before anything else sees it."""
    return [redact(line[:LINE_CHARS].rstrip("\r")) for line in lines]


async def grep(lines: list[str], pattern: str, deadline: float | None = None) -> list[str]:
    """The lines matching the pattern, searched in a child interpreter killed after the deadline."""
    deadline = deadline or GREP_DEADLINE_S
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        GREP_CHILD,
        pattern,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(
            child.communicate("\n".join(lines).encode("utf-8", "replace")), deadline
        )
    except TimeoutError:
        child.kill()
        await child.wait()
        raise CommandError(
            rich(
                Code("--grep"),
                f" took longer than {deadline:g} s over {len(lines):,} lines and was stopped; "
                "use a simpler or more specific pattern.",
            )
        ) from None
    if child.returncode != 0:
        raise CommandError(
            rich(Code("--grep"), " failed in its worker process; check the pattern.")
        )
    return [lines[int(i)] for i in out.split()]


def present(name: str, shown: list[str]) -> tuple[Text, list[Attachment]]:
    """The last lines inline as preformatted text; all of them in a file when they do not fit."""
    inline = shown[-INLINE_LINES:]
    while inline and len("\n".join(inline)) > INLINE_CHARS:
        inline = inline[1:]
    if not shown:
        return Emphasis("No lines."), []
    block = Pre("\n".join(inline)) if inline else None
    if len(inline) == len(shown):
        return block or "", []
    note = Emphasis(
        f"Last {len(inline)} of {len(shown)} lines; all {len(shown)} in {name}-tail.log."
    )
    return lines(note, block), [
        Attachment(f"{name}-tail.log", ("\n".join(shown) + "\n").encode(), LOG_FILES[name])
    ]


def size_text(n: int) -> str:
    """`1.5 MB` or `812 bytes`."""
    return f"{n / 1048576:,.1f} MB" if n >= 1048576 else f"{n:,} bytes"


def _summary(
    name: str, shown: int, matched: int | None, size: int, cut: bool, pattern: str | None
) -> Text:
    scope = f"the last {size_text(READ_BYTES)} of " if cut else ""
    if pattern is None:
        return rich(f"Last {shown:,} lines of ", Code(LOG_FILES[name]), f" ({size_text(size)}).")
    return rich(
        f"{matched:,} lines of {scope}",
        Code(LOG_FILES[name]),
        f" ({size_text(size)}) match ",
        Code(pattern),
        f"; showing the last {shown:,}.",
    )


@command(
    "logs",
    summary="The tail of one of ClientForge's log files, optionally filtered, secrets redacted.",
    args=LogsArgs,
    role=Role.OPERATOR,
    risk=Risk.READ,
    examples=("logs backend", "logs app --tail 300", "logs backend --grep 'ERROR|timeout'"),
    timeout=30.0,
)
async def logs(ctx: Context, args: LogsArgs) -> Result:
    """Read the allowlisted file's tail, redact, grep under a deadline; long output is attached.

    Operator role: application logs carry customers' e-mail addresses and IPs even with secrets
    masked.
    """
    path = log_path(ctx.settings.env.forge_log_dir, args.name)
    raw, size, cut = await read(path, ctx.settings.config.timeouts.backend)
    lines = clean(raw)
    matched = await grep(lines, args.grep) if args.grep else lines
    shown = matched[-args.tail :]
    errors = sum(1 for line in shown if ERRORISH.search(line))
    text, attachments = present(args.name, shown)
    return Result(
        f"logs {args.name}",
        Status.OK,
        summary=_summary(args.name, len(shown), len(matched), size, cut, args.grep),
        fields=[
            ("File", LOG_FILES[args.name]),
            ("Lines shown", f"{len(shown):,}"),
            ("Error-looking lines", f"{errors:,}"),
        ],
        text=text,
        attachments=attachments,
        data={
            "name": args.name,
            "file": LOG_FILES[args.name],
            "lines": shown,
            "matched": len(matched),
            "size": size,
            "truncated_read": cut,
        },
    )
