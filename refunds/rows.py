"""Model rows read by hand-written SQL, for the few statements every API request runs.

Building and compiling a query through the ORM costs the web process more CPU than PostgreSQL
spends running it: profiled under load, the token's lookup, the user's permissions, the replay
check and the payment's refund sums were a third of intake's CPU (bench/README.md, "Hand-written
SQL on the hot path"). Those statements are written out once here and in their callers; the
rows come back as model instances, converted as the ORM converts them (SQLite returns dates as
text), so the callers see what a QuerySet would have given them.
"""

from __future__ import annotations

from django.db import connection
from django.db.transaction import TransactionManagementError

# Per model and database vendor: the columns and their converters. Derived from the models,
# the same in every process; nothing shared is kept here.
_SHAPES: dict[tuple, tuple] = {}


def _shape(model):
    key = (model, connection.vendor)
    shape = _SHAPES.get(key)
    if shape is None:
        fields = model._meta.concrete_fields
        converters = []
        for position, field in enumerate(fields):
            column = field.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                converters.append((position, found, column))
        shape = _SHAPES[key] = ([field.column for field in fields], [field.attname for field in fields], converters)
    return shape


def table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def columns(model, alias: str) -> str:
    """`alias."col", …`: every concrete column of `model`, in the order `instance` reads them."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(name)}" for name in _shape(model)[0])


def width(model) -> int:
    return len(_shape(model)[0])


def instance(model, values):
    """The model instance for one row's values (as `columns` selected them), as the ORM loads it."""
    _, attnames, converters = _shape(model)
    values = list(values)
    for position, found, column in converters:
        value = values[position]
        for converter in found:
            value = converter(value, column, connection)
        values[position] = value
    return model.from_db(connection.alias, attnames, values)


def fetch_one(sql: str, params) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def fetch_all(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def get_locked(model, pk):
    """`model.objects.select_for_update().get(pk=pk)` written out: the row, locked until the
    caller's transaction ends (the worker locks a refund this way at each step). Raises
    model.DoesNotExist when there is none, and outside a transaction as Django does."""
    if not connection.in_atomic_block:
        raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    found = fetch_one(
        f"SELECT {columns(model, 't')} FROM {table(model)} t WHERE t.{connection.ops.quote_name(model._meta.pk.column)} = %s{lock}",
        [pk],
    )
    if found is None:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
    return instance(model, found)
