"""Secrets never reach Slack or the logs: one redaction for replies, audit rows and log lines."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
_WORD = r"(?:password|passwd|secret|token|(?:api|private|access|secret)[_-]?key)"
_PATTERNS = [
    (re.compile(r"xox[abposre]-[A-Za-z0-9-]+"), MASK),
    (re.compile(r"xapp-[A-Za-z0-9-]+"), MASK),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + MASK),
    (re.compile(r"(?i)(authorization\s*[:=]\s*)\S+"), r"\1" + MASK),
    (re.compile(r"(://[^:/@\s]*:)[^@\s/]+@"), r"\1" + MASK + "@"),
    (
        re.compile(r"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s&,;]+"),
        r"\1" + MASK,
    ),
    # log lines (`logs`): JWTs, cloud and LLM keys, `"accessToken": "…"` JSON fields,
    # `DB_PASSWORD=…`, `?api_key=`
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}"), MASK),
    (
        re.compile(rf'(?i)("[\w-]*(?:{_WORD}|authorization|cookie)"\s*:\s*)"(?:[^"\\]|\\.)*"'),
        r'\1"' + MASK + '"',
    ),
    (re.compile(rf"(?i)\b([\w-]*{_WORD}\s*[=:]\s*)(?!\[redacted\])[^\s&,;\"']+"), r"\1" + MASK),
]


class Redactor:
    """Masks known secret values and anything shaped like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """The text with every secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


redact = Redactor()
