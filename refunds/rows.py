"""Model rows read and written by hand-written SQL, for the few statements every API request and
every refund step runs.

Building and compiling a query through the ORM costs the web process more CPU than PostgreSQL
spends running it: profiled under load, the token's lookup, the user's permissions, the replay
check and the payment's refund sums were a third of intake's CPU (bench/README.md, "Hand-written
SQL on the hot path"). Those statements are written out once here and in their callers; the
rows come back as model instances, converted as the ORM converts them (SQLite returns dates as
text), so the callers see what a QuerySet would have given them.
"""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.db.models import signals
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


def get(model, pk):
    """`model.objects.get(pk=pk)` written out (a worker reads a refund this way before it claims
    it). Raises model.DoesNotExist when there is none."""
    return _get(model, pk, lock="")


def get_locked(model, pk):
    """`model.objects.select_for_update().get(pk=pk)` written out: the row, locked until the
    caller's transaction ends (the worker locks a refund this way at each step). Raises
    model.DoesNotExist when there is none, and outside a transaction as Django does."""
    if not connection.in_atomic_block:
        raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
    return _get(model, pk, lock=" FOR UPDATE" if connection.features.has_select_for_update else "")


def _get(model, pk, *, lock: str):
    found = fetch_one(
        f"SELECT {columns(model, 't')} FROM {table(model)} t WHERE t.{connection.ops.quote_name(model._meta.pk.column)} = %s{lock}",
        [pk],
    )
    if found is None:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
    return instance(model, found)


def written_fields(model) -> list:
    """The fields an INSERT of `model` names: every concrete one but the generated primary key."""
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def prepared(obj, fields, *, add: bool) -> list:
    """What the ORM would write for these fields of `obj`: `pre_save` first (`auto_now`,
    `auto_now_add` stamped on `obj`), then adapted for this database (JSON, dates on SQLite)."""
    return [field.get_db_prep_save(field.pre_save(obj, add), connection) for field in fields]


def insert_all(model, objs: list) -> list:
    """`model.objects.bulk_create(objs)` for a few rows, written out: one `INSERT … VALUES (…), (…)
    RETURNING id`. Django's bulk_create sends two rows or more on PostgreSQL as one array per column
    (`UNNEST`), which psycopg, binding on the client, quotes element by element: two log rows cost
    about twice the CPU this way (bench/README.md). Values are prepared as the ORM prepares them
    (`pre_save`: `auto_now_add`; JSON adapted); like bulk_create, no signals."""
    if not objs:
        return objs
    fields = written_fields(model)
    params = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        params += prepared(obj, fields, add=True)
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    ids = fetch_all(
        f"INSERT INTO {table(model)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES {', '.join([row] * len(objs))} RETURNING {quote(model._meta.pk.column)}",
        params,
    )
    for obj, (pk,) in zip(objs, ids, strict=True):  # PostgreSQL and SQLite return them in VALUES order
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def update(obj, names: list[str]) -> None:
    """`obj.save(update_fields=names)` written out: one `UPDATE … SET … WHERE pk = …` of those
    fields, prepared as the ORM prepares them (`auto_now` stamped), with pre_save and post_save
    sent as save() sends them. Raises DatabaseError, as save() does, when no row was updated."""
    model = type(obj)
    meta = model._meta
    fields = [meta.get_field(name) for name in dict.fromkeys(names)]
    using = connection.alias
    signals.pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=frozenset(names))
    values = prepared(obj, fields, add=False)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table(model)} SET {', '.join(f'{quote(field.column)} = %s' for field in fields)} "
            f"WHERE {quote(meta.pk.column)} = %s",
            [*values, obj.pk],
        )
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")
    signals.post_save.send(
        sender=model, instance=obj, created=False, update_fields=frozenset(names), raw=False, using=using
    )
