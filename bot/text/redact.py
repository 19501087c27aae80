"""The one redaction for forge: logs, job data, Slack posts, files, audit rows, errors, terminal.

The token shapes follow gitleaks' default rule set (config/gitleaks.toml, v8.x): the rules
`slack-bot-token`, `slack-user-token`, `slack-app-token`, `slack-config-access-token`,
`slack-legacy-*`, `slack-webhook-url`, `github-pat`, `github-oauth`, `github-app-token`,
`github-refresh-token`, `github-fine-grained-pat`, `stripe-access-token`, `aws-access-token`,
`gcp-api-key`, `jwt`, `private-key`, `curl-auth-header` and `generic-api-key` (its keyword
list), plus what gitleaks leaves to its generic rule: AWS secret keys beside their name,
`Authorization`, `Cookie` and `Set-Cookie` headers, and passwords inside URLs of any scheme.
Where a shape is only recognisable by its name (a JSON field, a query parameter, a job-data
key), the name decides; `redact_value` walks dicts and lists at any depth.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

MASK = "[redacted]"
_M = re.escape(MASK)
# gitleaks generic-api-key keywords, and the names forge's own job data and configs use; a name's
# prefix is bounded and starts a word, or a long word costs its length squared in backtracking
_NAME = (
    r"(?:passwd|password|pwd|secret|token|credentials?|api[_-]?key|apikey|"
    r"access[_-]?key|private[_-]?key|secret[_-]?key|client[_-]?secret|session[_-]?id)"
)
SECRET_KEY = re.compile(
    r"password|passwd|secret|token|api[_-]?key|apikey|authorization|credential|private[_-]?key|"
    r"access[_-]?key|cookie|session[_-]?id|signature|^auth$|^pwd$|^pass$",
    re.IGNORECASE,
)


_PEM = r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"


def _rule(pattern: str, replacement: str = MASK, flags: int = 0) -> tuple[str, str, int]:
    return pattern, replacement, flags


# Whole-token shapes: the match is the secret.
_TOKENS = [
    _rule(_PEM + r"[\s\S]*?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
    _rule(_PEM + r"[\s\S]*"),  # a block cut off before its END line
    _rule(
        r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers|commands|actions)/"
        r"[A-Za-z0-9+/_%.-]{8,}"
    ),
    _rule(r"\bxox[abposre]-[A-Za-z0-9-]+"),
    _rule(r"\bxoxe\.xox[bp]-[A-Za-z0-9-]{6,}"),
    _rule(r"\bxapp-[A-Za-z0-9-]+"),
    _rule(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    _rule(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    _rule(r"\b(?:sk|rk|pk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}"),
    _rule(r"\bwhsec_[A-Za-z0-9]{20,}"),
    _rule(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
    _rule(r"\bAIza[\w-]{35}"),
    _rule(r"\bey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_/\\-]{10,}\.[A-Za-z0-9_/\\-]*=*"),
    _rule(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"),
]
# Shapes recognised by what stands before them: the prefix stays, the value goes.
_CONTEXT = [
    _rule(
        r"(?i)(aws.{0,20}?(?:secret|key).{0,20}?[=:]\s*['\"]?)[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
    ),
    _rule(  # every `name=value` pair of the header, attributes included
        r"(?i)\b((?:set-)?cookie\s*:\s*)[^\s;\"'\\]+(?:;[ \t]*[^\s;=\"'\\]+(?:=[^\s;\"'\\]*)?)*",
        r"\1" + MASK,
    ),
    _rule(
        r"(?i)(\bauthorization\s*[:=]\s*['\"]?)(?:(?:bearer|basic|token|digest)\s+)?"
        rf"(?!{_M})[^\s'\",;]+",
        r"\1" + MASK,
    ),
    _rule(r"(?i)\b(bearer|basic)\s+(?!" + _M + r")[A-Za-z0-9._~+/=:-]{6,}", r"\1 " + MASK),
    _rule(  # user:password@ in a URL of any scheme
        rf"(?i)(\b[a-z][a-z0-9+.-]{{1,20}}://[^:/?#@\s]*:)(?!{_M})[^@\s/]+@", r"\1" + MASK + "@"
    ),
    _rule(
        rf"(?i)((?<![\w.-])[\"']?[\w.-]{{0,64}}{_NAME}[\"']?\s*[:=]\s*[\"'])(?!{_M})"
        r"(?:[^\"'\\\n]|\\.)+([\"'])",
        r"\1" + MASK + r"\2",
    ),
    # the same inside a JSON string that holds JSON, at any depth (`\"api_key\": \"…\"`)
    _rule(
        rf"(?i)(\\+[\"'][\w.-]{{0,64}}{_NAME}\\+[\"']\s*:\s*\\+[\"'])(?!{_M}).+?(\\+[\"'])",
        r"\1" + MASK + r"\2",
    ),
    _rule(
        rf"(?i)(\b[\w.-]{{0,64}}{_NAME}\s*[=:]\s*)(?![\"'\s]|{_M})[^\s&,;|\"'<>)}}\]]+",
        r"\1" + MASK,
    ),
]


@functools.cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    """The rules, compiled on first use (`forge run help` never redacts, so never compiles)."""
    return [(re.compile(pattern, flags), mask) for pattern, mask, flags in _TOKENS + _CONTEXT]


class Redactor:
    """Masks known secret values and anything shaped like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.remember(secrets)

    def remember(self, secrets: Iterable[str]) -> None:
        """Mask these exact values too from now on (configured tokens, DSN passwords)."""
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= 6}
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """The text with every secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _patterns():
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with secret-named keys masked and every string redacted, any depth."""
        if isinstance(value, dict):
            return {k: MASK if _secret_key(k, v) else self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, bytes):
            return self.content(value)
        return self(value) if isinstance(value, str) else value

    def content(self, data: bytes) -> bytes:
        """A file's bytes redacted when they are text; binary files (pictures) are left whole."""
        try:
            return self(data.decode("utf-8")).encode()
        except UnicodeDecodeError:
            return data


def _secret_key(key: object, value: Any) -> bool:
    """A key named like a secret whose value is a scalar (a nested object is walked instead)."""
    return bool(SECRET_KEY.search(str(key))) and not isinstance(value, dict | list | tuple)


redact = Redactor()
"""The process's redactor; `remember` adds the configured secrets once settings are loaded."""


def remember(secrets: Iterable[str]) -> Redactor:
    """Teach the process's redactor these exact values; returns it."""
    redact.remember(secrets)
    return redact


def redact_value(value: Any) -> Any:
    """`redact.value`: secret-named keys masked at any depth, secret shapes masked in strings."""
    return redact.value(value)
