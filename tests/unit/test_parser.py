"""The one parser: Slack typography, quoting, options, limits, and typed arguments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.errors import ForgeError, UnknownCommand, UsageError
from bot.core.parser import normalise, parse, split
from bot.core.registry import Args, Registry, Risk, Role, command, option, positional
from bot.core.result import Result
from bot.slack.mrkdwn import mrkdwn

registry = Registry()


class QueueArgs(Args):
    """Test args: a queue and some options."""

    queue: str = positional(help="queue name")
    older_than: str | None = option()
    limit: int = option(20, ge=1, le=100)
    dry_run: bool = option(False)


class TitleArgs(Args):
    """Test args: a severity and free text."""

    severity: str = positional()
    title: str | None = positional(None, rest=True)


async def _noop(ctx, args):
    return Result("noop")


command(
    "dlq clear",
    summary="clear",
    args=QueueArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    registry=registry,
)(_noop)
command("dlq list", summary="list", args=QueueArgs, registry=registry)(_noop)
command("incident declare", summary="declare", args=TitleArgs, registry=registry)(_noop)
command("help", summary="help", registry=registry)(_noop)


def test_smart_quotes_and_em_dash_are_normalised():
    """Slack's curly quotes and em-dash parse like their ASCII originals."""
    a = parse("dlq clear “email” —older-than 2h —dry-run", registry)
    b = parse('dlq clear "email" --older-than 2h --dry-run', registry)
    assert a.args == b.args
    assert a.args.queue == "email" and a.args.older_than == "2h" and a.args.dry_run is True


def test_flag_equals_and_space_forms_are_equivalent():
    """`--flag value` and `--flag=value` bind the same value."""
    assert parse("dlq list email --limit=5", registry).args.limit == 5
    assert parse("dlq list email --limit 5", registry).args.limit == 5


def test_quoted_argument_stays_one_word():
    """A quoted queue name with shell metacharacters is one argument, never split or expanded."""
    parsed = parse('dlq list "email; FLUSHALL"', registry)
    assert parsed.args.queue == "email; FLUSHALL"


def test_rest_positional_takes_remaining_words():
    """A free-text positional gathers every remaining word."""
    parsed = parse("incident declare P1 checkout is slow", registry)
    assert parsed.args.severity == "P1" and parsed.args.title == "checkout is slow"


def test_double_dash_ends_options():
    """After `--`, words that look like options are positional values."""
    assert parse("dlq list -- --all", registry).args.queue == "--all"


@pytest.mark.parametrize(
    "text, message",
    [
        ("dlq list", "Missing `queue`"),
        ("dlq list email extra", "Unexpected argument `extra`"),
        ("dlq list email --nope", "Unknown option `--nope`"),
        ("dlq list email --limit", "needs a value"),
        ("dlq list email --limit abc", "Bad `limit`"),
        ("dlq list email --limit 1000", "Bad `limit`"),
        ("dlq list email --limit 1 --limit 2", "given twice"),
        ('dlq list "email', "Could not read the input"),
    ],
)
def test_bad_arguments_raise_usage_with_the_commands_usage(text, message):
    """Every kind of bad argument answers with a short reason and the command's usage."""
    with pytest.raises(UsageError) as err:
        parse(text, registry)
    assert message in mrkdwn(err.value.text)
    if "Could not read" not in message:
        assert err.value.usage and err.value.usage.startswith("dlq list <queue>")


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1001,
        "dlq list email\n--limit 2",
        "dlq list \x1b[31memail",
        "help\x00",
        "dlq list email\u202e",
    ],
)
def test_oversized_and_control_character_input_is_refused(text):
    """Long input, control chars (newline, ANSI, NUL, bidi override): refused before parsing."""
    with pytest.raises(UsageError):
        normalise(text)


def test_too_many_words_are_refused():
    """A thousand arguments are refused early."""
    with pytest.raises(UsageError, match="Too many words"):
        split(" ".join(["x"] * 41))


def test_unknown_command_suggests_a_close_one():
    """A typo answers with 'did you mean'."""
    with pytest.raises(UnknownCommand) as err:
        parse("dlq clera email", registry)
    assert "dlq clear" in err.value.suggestions
    assert "Did you mean `dlq clear`" in mrkdwn(err.value.text)


def test_empty_text_is_help():
    """`/forge` alone runs help."""
    assert parse("   ", registry).spec.name == "help"


def test_command_words_are_case_insensitive():
    """`DLQ List` finds `dlq list`; the argument keeps its case."""
    parsed = parse("DLQ List Email", registry)
    assert parsed.spec.name == "dlq list" and parsed.args.queue == "Email"


def test_normalised_text_requotes_arguments():
    """The audited text is the normalised command with arguments safely quoted."""
    assert parse("dlq list “a b”", registry).text == "dlq list 'a b'"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_input_parses_or_raises_a_forge_error(text):
    """Any unicode either parses into typed arguments or raises forge's own error, nothing else."""
    try:
        parse(text, registry)
    except ForgeError:
        pass
