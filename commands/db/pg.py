"""ClientForge's PostgreSQL for `db …`: read-only, statement-timed transactions; catalog tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import BeforeValidator

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.result import Attachment
from bot.text.cells import Code, join, rich

T = TypeVar("T")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
SHOWN_SQL = 90
TABLE_KINDS = ("r", "p", "m")


@dataclass(frozen=True)
class Relation:
    """A table found in the catalog: its schema, name and the server-quoted `schema.table`."""

    schema: str
    name: str
    quoted: str
    oid: int

    @property
    def label(self) -> str:
        """`contacts`, or `crm.contacts` outside `public`."""
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


def check_name(text: str) -> tuple[str | None, str]:
    """`table` or `schema.table` as plain identifiers; anything else is refused before SQL."""
    parts = text.strip().split(".")
    if len(parts) > 2 or not all(IDENTIFIER.match(p) for p in parts):
        raise CommandError(
            rich(
                Code(text[:80]),
                " is not a table name: use letters, digits and ",
                Code("_"),
                ", optionally ",
                Code("schema.table"),
                ".",
            )
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _table_name(value: object) -> str:
    try:
        check_name(str(value))
    except CommandError as exc:
        raise ValueError(str(exc)) from None
    return str(value).strip()


TableName = Annotated[str, BeforeValidator(_table_name)]


async def find_table(ctx: Context, text: str) -> Relation:
    """The user table the name means, from the catalog; quoted by the server, never by pasting."""
    schema, name = check_name(text)
    rows = await ctx.backends.pg.read(
        """
        SELECT n.nspname AS schema, c.relname AS name,
               format('%I.%I', n.nspname, c.relname) AS quoted, c.oid::int AS oid
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname = $1 AND ($2::text IS NULL OR n.nspname = $2)
           AND c.relkind::text = ANY($3::text[])
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
         ORDER BY n.nspname = 'public' DESC, n.nspname""",
        name,
        schema,
        list(TABLE_KINDS),
    )
    if not rows:
        raise CommandError(
            rich("No table ", Code(text), " in this database. ", Code("db tables"), " lists them.")
        )
    if len(rows) > 1 and schema is None:
        where = join(", ", [Code(f"{r['schema']}.{r['name']}") for r in rows])
        raise CommandError(
            rich(
                Code(name),
                " exists in several schemas (",
                where,
                "): name one as ",
                Code("schema.table"),
                ".",
            )
        )
    return Relation(**dict(rows[0]))


def percent(value: float | None) -> str:
    """`99.2 %`, or an em dash when there is nothing to divide."""
    return "—" if value is None else f"{value:.1f} %"


def one_line(sql: str | None, width: int = SHOWN_SQL) -> str:
    """A statement on one line, shortened with an ellipsis."""
    flat = " ".join((sql or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def statements_file(
    name: str, statements: list[tuple[str, str]], width: int = SHOWN_SQL
) -> list[Attachment]:
    """The full text of every statement that was shortened in the message, as one .sql file."""
    long = [(label, sql) for label, sql in statements if len(" ".join((sql or "").split())) > width]
    if not long:
        return []
    body = "\n\n".join(f"-- {label}\n{sql.strip()};" for label, sql in long)
    return [Attachment(name, (body + "\n").encode(), title="Full statement text")]
