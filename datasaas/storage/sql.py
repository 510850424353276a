"""Small dialect helpers shared by the query modules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Table,
    bindparam,
    cast,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from datasaas.periods import SLOT_SECONDS


def dialect_name(session: AsyncSession) -> str:
    """Return the session's dialect name ("sqlite" or "postgresql")."""
    return session.get_bind().dialect.name


def dialect_insert(session: AsyncSession) -> Any:
    """Return the dialect's ``insert`` construct (it has ``on_conflict_do_*``)."""
    return postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert


def core_table(model: Any) -> Table:
    """The Core table of a table model: bulk statements on it skip the ORM's bulk-insert layer."""
    table: Table = model.__table__
    return table


def core_rows(model: Any, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows keyed by a model's attribute names, keyed by its table's column keys instead (they
    differ where a column is renamed, such as ``GoalCompletion.properties`` → ``metadata``).
    An unknown name raises: Core would silently drop it."""
    keys = _column_keys(model)
    if not rows:
        return []
    same_keys = all(row.keys() == rows[0].keys() for row in rows)
    if same_keys and all(keys.get(name) == name for name in rows[0]):  # nothing to rename
        return list(rows)
    try:
        return [{keys[name]: value for name, value in row.items()} for row in rows]
    except KeyError as exc:
        raise ValueError(f"{model.__name__} has no column {exc.args[0]!r}") from None


@cache
def _column_keys(model: Any) -> dict[str, str]:
    return {name: column.key for name, column in inspect(model).columns.items()}


def insert_ignore(
    session: AsyncSession, table: Any, rows: Iterable[dict[str, Any]] | dict[str, Any]
) -> Insert:
    """Build ``INSERT ... ON CONFLICT DO NOTHING`` for the session's dialect."""
    values = rows if isinstance(rows, dict) else list(rows)
    statement: Insert = dialect_insert(session)(table).values(values).on_conflict_do_nothing()
    return statement


UNNEST_CHUNK = 5_000
"""Rows per ``INSERT … SELECT FROM unnest(…)`` on PostgreSQL (a few arrays of that length)."""


@dataclass(frozen=True, slots=True)
class _DriverInsert:
    """An SQLite ``INSERT`` compiled once, and how a row becomes its positional parameters:
    per position, the row's column key and its type's bind processor, or (for a literal in an
    ``ON CONFLICT`` clause) the constant already processed. With ``returning``, the returned
    columns' result processors, and the statement split around its one ``VALUES`` group so
    that it can be sent for many rows at once (``sqlite3``'s executemany drops what a
    ``RETURNING`` gives)."""

    sql: str
    positions: tuple[tuple[str | None, Callable[[Any], Any] | None, Any], ...]
    results: tuple[Callable[[Any], Any] | None, ...] = ()
    around_values: tuple[str, str, str] | None = None
    """(before, the one row's ``(?, …)``, after) of a statement with ``returning``."""

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            constant if name is None else (process(row[name]) if process else row[name])
            for name, process, constant in self.positions
        )

    def for_rows(self, count: int) -> str:
        """The statement with ``count`` rows of values (their parameters one after another)."""
        assert self.around_values is not None
        before, group, after = self.around_values
        return before + ", ".join([group] * count) + after

    def returned(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            process(value) if process else value
            for process, value in zip(self.results, row, strict=True)
        )


@lru_cache(maxsize=256)
def _driver_insert(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    on_conflict: Callable[[Any], Any] | None,
    returning: tuple[Any, ...] = (),
) -> _DriverInsert:
    statement: Any = sqlite.insert(table)
    statement = on_conflict(statement) if on_conflict else statement
    statement = statement.returning(*returning) if returning else statement
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    positions = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in columns:
            positions.append((name, process, None))
        else:
            positions.append((None, None, process(bind.value) if process else bind.value))
    if not returning:
        return _DriverInsert(compiled.string, tuple(positions))
    # Only a statement whose parameters are exactly one row's values repeats row by row.
    group = "(" + ", ".join(["?"] * len(columns)) + ")"
    head, found, tail = compiled.string.partition(f" VALUES {group}")
    every_column_once = sorted(name or "" for name, _, _ in positions) == sorted(columns)
    if not every_column_once or not found or group in tail:
        raise ValueError(f"cannot send many rows of {compiled.string!r} at once")
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returning
    )
    return _DriverInsert(
        compiled.string, tuple(positions), results, (head + " VALUES ", group, tail)
    )


_SQLITE_MAX_PARAMETERS: Final = 32_766
"""Bound parameters SQLite allows in one statement (since 3.32): a multi-row insert's limit."""


async def insert_many(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict: Callable[[Any], Any] | None = None,
    returning: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """Insert many rows (each keyed by the same column keys), ``on_conflict`` applied to the
    dialect's insert (``lambda s: s.on_conflict_do_nothing()``, …); with ``returning``, the
    rows it inserted come back with those columns, in no particular order (a row skipped by
    ``ON CONFLICT DO NOTHING`` returns nothing).

    PostgreSQL: one ``INSERT … SELECT … FROM unnest(:col1, :col2, …)`` per 5,000 rows, an array
    per column. An executemany runs the statement once per row on the server, and SQLAlchemy's
    multi-row batching leaves statements with ``ON CONFLICT`` out.

    SQLite: a statement compiled once per table, columns, ``on_conflict`` and ``returning``
    (pass a module-level function, not a new lambda per call, for it to be found again), its
    parameters bound here by each column type's own processor and sent with
    ``exec_driver_sql``: one executemany (``sqlite3`` loops over the rows in C), or with
    ``returning`` one ``INSERT … VALUES (…), (…), …`` per chunk of rows. SQLAlchemy's own
    per-row parameter building for a compiled statement was over half of what these inserts
    cost (a batch of 100 tracked events writes five). Statement events, echo and error
    wrapping are SQLAlchemy's as before.
    """
    if not rows:
        return []
    columns = list(rows[0])
    insert = dialect_insert(session)

    def finished(statement: Any) -> Any:
        statement = on_conflict(statement) if on_conflict else statement
        return statement.returning(*returning) if returning else statement

    if dialect_name(session) != "postgresql":
        connection = await session.connection()
        prepared = _driver_insert(
            connection.dialect, table, tuple(columns), on_conflict, tuple(returning)
        )
        if not returning:
            parameters = [prepared.parameters(row) for row in rows]
            await connection.exec_driver_sql(prepared.sql, parameters)
            return []
        inserted: list[tuple[Any, ...]] = []
        per_statement = _SQLITE_MAX_PARAMETERS // len(columns)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            flat = tuple(value for row in chunk for value in prepared.parameters(row))
            sent = await connection.exec_driver_sql(prepared.for_rows(len(chunk)), flat)
            inserted.extend(prepared.returned(row) for row in sent.all())
        return inserted
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), UNNEST_CHUNK):
        chunk = rows[start : start + UNNEST_CHUNK]
        arrays = [
            bindparam(
                None, [row[name] for row in chunk], type_=postgresql.ARRAY(table.c[name].type)
            )
            for name in columns
        ]
        source = func.unnest(*arrays).table_valued(*columns).render_derived(name="src")
        statement = insert(table).from_select(columns, select(*(source.c[n] for n in columns)))
        result = await session.execute(finished(statement))
        if returning:
            found.extend(tuple(row) for row in result.all())
    return found


def ignore_conflicts(insert: Any) -> Any:
    """The ``on_conflict`` of ``insert_many`` that skips rows that exist (``DO NOTHING``)."""
    return insert.on_conflict_do_nothing()


async def insert_many_ignoring_conflicts(
    session: AsyncSession,
    model: Any,
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """``INSERT ... ON CONFLICT DO NOTHING`` of many rows of a table model (``insert_many``;
    with ``returning``, the rows it did insert). Rows missing a column another row has get
    NULL there."""
    if not rows:
        return []
    if not all(row.keys() == rows[0].keys() for row in rows):
        columns = list(dict.fromkeys(name for row in rows for name in row))
        rows = [{name: row.get(name) for name in columns} for row in rows]
    params = core_rows(model, rows)
    return await insert_many(
        session,
        core_table(model),
        params,
        on_conflict=ignore_conflicts,
        returning=returning,
    )


async def insert_returning_ids(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    natural_key: Column[Any],
) -> list[int]:
    """Insert ``rows`` (one executemany) and return their ``id``s, in order.

    PostgreSQL: one ``INSERT … RETURNING`` (SQLAlchemy's "insertmanyvalues" keeps the order).
    SQLite cannot return the rows of an executemany in order, and asked to SQLAlchemy sends one
    ``INSERT … RETURNING`` per row (a thread hop each, the longest step of a group commit); so
    each id is returned beside its ``natural_key``, a column whose value differs in every row
    (a payment's transaction id, an event id), and matched to its row by it.
    """
    if not rows:
        return []
    if dialect_name(session) == "postgresql":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [int(row[0]) for row in (await session.execute(statement, list(rows))).all()]
    # SQLite returns the rows of a multi-row INSERT in no promised order, so each id comes
    # back with its natural key: still one statement (SQLAlchemy's "insertmanyvalues").
    statement = insert(table).returning(natural_key, table.c.id)
    found = await session.execute(statement, list(rows))
    ids = {value: int(row_id) for value, row_id in found.all()}
    return [ids[row[natural_key.key]] for row in rows]


def epoch_seconds(session: AsyncSession, column: Any) -> ColumnElement[int]:
    """An SQL expression for a timestamp column as integer Unix seconds, floored."""
    if dialect_name(session) == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), BigInteger)
    # SQLite's date functions round to milliseconds: 10:59:59.9996 would become 11:00:00 and
    # land in the next hour or slot. The stored text is 'YYYY-MM-DD HH:MM:SS.ffffff', so
    # dropping the fraction first floors exactly.
    return cast(func.strftime("%s", func.substr(column, 1, 19)), BigInteger)


def slot_of(at: datetime) -> int:
    """Return the 15-minute activity slot number containing an instant."""
    return int(at.timestamp()) // SLOT_SECONDS


def aggregate_ids(session: AsyncSession, column: Any) -> Any:
    """An aggregate of integer ids as one value per group (``array_agg`` / ``group_concat``).

    Reading a million ids as a few aggregated values is several times faster than as a
    million rows; ``parse_ids`` turns the value back into integers.
    """
    if dialect_name(session) == "postgresql":
        return func.array_agg(column)
    return func.group_concat(column)


def parse_ids(value: Any) -> list[int]:
    """The integers of an ``aggregate_ids`` value (None for an empty group)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [int(part) for part in value.split(",")] if value else []
    return [int(part) for part in value]
