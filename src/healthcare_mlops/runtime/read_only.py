"""The read-only rule for SQL that a person types: one read statement, decided by a SQL parser.

Only a single ``SELECT`` (with ``WITH``, set operations, ``FROM``-first, ``SUMMARIZE``),
``DESCRIBE`` or ``SHOW`` passes; anything else is refused with ``read-only: ...`` before
anything runs. Locally DuckDB's own parser classifies the statement
(``duckdb.extract_statements``) and the checked statement object is what runs. In front of a
Databricks SQL warehouse no Databricks parser runs client-side, so sqlglot's Databricks dialect
reads the text; what it cannot read as a query is refused, and every node of the tree is
checked, so a write nested in a query is refused too. There, every table a statement reads must
resolve to one of the product's tables (``tables.ALL_TABLES``) or a name the statement itself
defines (a CTE): a table named by an expression (``IDENTIFIER('...')``), a path
(``delta.`/...` ``), a table-valued or unknown function (``read_files``, ``http_request``,
``ai_query``, ``reflect``) and any ``SHOW`` but a listing (``SHOW CREATE TABLE``) are refused.
``EXPLAIN`` is refused on both: DuckDB's ``EXPLAIN ANALYZE`` executes the statement it explains.

The same module knows the tables with direct identifiers (``tables.PERSONAL_TABLES``): they
are only readable when asked for (``healthcare-mlops sql --identifiers``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from healthcare_mlops.errors import UserError
from healthcare_mlops.tables import ALL_TABLES, PERSONAL_TABLES

if TYPE_CHECKING:           # DuckDB is imported where it is used: the CLI's help needs only READS
    import duckdb

READS = "SELECT, WITH, DESCRIBE or SHOW"      # the statements a person's SQL may be


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _excerpt(sql: str) -> str:
    """The start of a refused statement, on one line, for the error message."""
    text = " ".join(sql.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _refuse(what: str) -> UserError:
    return UserError(f"read-only: {what}; only one {READS} statement runs here")


def identifiers_hint(names: Iterable[str]) -> str:
    """What to do when a person names a table with direct identifiers that the session hides."""
    personal = ", ".join(sorted(names))
    return (f"{personal} holds direct identifiers and is not in this session; ask for it explicitly with "
            "`healthcare-mlops sql --identifiers` (needs a role allowed read_identifiers)")


# -- DuckDB (the local engines) --------------------------------------------------------------------
def duckdb_read_statement(sql: str) -> duckdb.Statement:
    """The single read statement in ``sql`` as DuckDB parsed it, or a UserError naming what was refused."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
        kinds = [statement.type for statement in statements]
    except duckdb.ParserException as exc:
        raise UserError(f"query failed: {_first_line(exc)}") from exc
    except ValueError as exc:   # a statement type this client's enum does not know (e.g. UPDATE EXTENSIONS)
        raise _refuse(f"'{_excerpt(sql)}' refused: not a statement DuckDB classifies as a read") from exc
    if not statements:
        raise UserError("query failed: no statement to run")
    if len(statements) > 1:
        raise _refuse(f"{len(statements)} statements ({', '.join(kind.name for kind in kinds)}) in one query refused")
    if kinds[0] != duckdb.StatementType.SELECT:
        raise _refuse(f"{kinds[0].name} statement refused ('{_excerpt(sql)}')")
    return statements[0]


def hidden_tables_named(sql: str, hidden: Iterable[str]) -> set[str]:
    """Which of the ``hidden`` tables ``sql`` names (DuckDB's parser; empty when it cannot tell)."""
    import duckdb

    try:
        named = duckdb.get_table_names(sql, qualified=False)
    except duckdb.Error:       # the query's own error is then the one to report
        return set()
    return {name.lower() for name in named} & set(hidden)


# -- Databricks SQL (the warehouse) ----------------------------------------------------------------
class _CommandFallbackNotice(logging.Filter):
    """sqlglot warns on the terminal when it keeps a statement as raw text (``SHOW ...``): the rule
    below decides on such statements itself, so the warning would only confuse the person."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


_QUIET = _CommandFallbackNotice()


def warehouse_read_statement(sql: str, hidden: Iterable[str] = PERSONAL_TABLES) -> None:
    """Refuse ``sql`` unless sqlglot (Databricks dialect) reads it as one read statement whose every
    table reference resolves to a product table other than the ``hidden`` ones (see the module
    docstring). The warehouse's grants remain the gate on the workspace; this refusal keeps a
    person's write or identifier read from being sent with their credentials at all."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    logging.getLogger("sqlglot").addFilter(_QUIET)
    try:
        trees = [tree for tree in sqlglot.parse(sql, read="databricks") if tree is not None]
    except (ParseError, TokenError) as exc:
        raise _refuse(f"'{_excerpt(sql)}' refused: not readable as Databricks SQL ({_first_line(exc)})") from exc
    if not trees:
        raise UserError("query failed: no statement to run")
    if len(trees) > 1:
        raise _refuse(f"{len(trees)} statements ({', '.join(type(t).__name__ for t in trees)}) in one query refused")
    tree = trees[0]
    show = isinstance(tree, exp.Command) and str(tree.this).upper() == "SHOW"
    if show and not SHOW_LISTING.fullmatch(" ".join(tree.expression.name.split())):
        raise _refuse(f"SHOW other than a listing of catalogs, schemas or tables refused ('{_excerpt(sql)}')")
    if not (show or isinstance(tree, (exp.Query, exp.Describe))):
        raise _refuse(f"{type(tree).__name__} statement refused ('{_excerpt(sql)}')")
    nested = [node for node in tree.walk() if node is not tree and isinstance(node, (exp.DML, exp.DDL, exp.Command))]
    if nested:
        raise _refuse(f"{type(nested[0]).__name__} inside the query refused ('{_excerpt(sql)}')")
    named = {table.name.lower() for table in tree.find_all(exp.Table)} & set(hidden)
    if named:
        raise UserError(f"query refused: {identifiers_hint(named)}")
    _check_references(tree, sql, set(ALL_TABLES) - set(hidden))


# The SHOW statements that only list names: SHOW TABLES / SCHEMAS / DATABASES / CATALOGS [IN x] [LIKE '...'].
SHOW_LISTING = re.compile(r"(?i)(TABLES|SCHEMAS|DATABASES|CATALOGS)(\s+(IN|FROM)\s+[\w`.]+)?(\s+(LIKE\s+)?'[^']*')?")


def _check_references(tree, sql: str, allowed: set[str]) -> None:
    """Refuse a table the rule cannot resolve to one of ``allowed`` (or a CTE of the statement) and
    any function sqlglot does not know (Databricks' own: ``http_request``, ``read_files``, ...)."""
    from sqlglot import exp

    unknown = next((node for node in tree.walk() if isinstance(node, exp.Anonymous)), None)
    if unknown is not None:
        raise _refuse(f"function {str(unknown.this).upper()} refused ('{_excerpt(sql)}')")
    defined = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if not isinstance(table.this, exp.Identifier) or name not in allowed | defined:
            raise _refuse(f"table reference '{table.sql(dialect='databricks')[:60]}' is not one of this "
                          f"product's tables ('{_excerpt(sql)}')")
