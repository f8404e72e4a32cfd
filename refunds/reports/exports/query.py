"""Which refunds an export covers and its finished rows: one column list, one row stream.

Speed: on PostgreSQL the database computes every finished cell (decimal amounts from the
integers, timestamps in UTC and in the business zone, time to resolution, approvers, formula
injection neutralised), so Python hands each batch of rows from the server-side cursor to
`csv.writer.writerows` without touching a row. Other backends (SQLite in development) compute
the same cells in Python from the raw fields (refunds.reports.formatting); a test holds both
paths to the same output.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from itertools import islice
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import BigIntegerField, CharField, Expression, F, Func, Q, QuerySet, Value
from django.utils.text import smart_split, unescape_string_literal

from approvals.models import Approval
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import _THREE_DECIMAL, _ZERO_DECIMAL
from refunds.reports.calendar import business_zone, day_start
from refunds.reports.formatting import duration_hms, money_plain, timestamp_display
from refunds.selectors import refund_visible_to

# Rows read per round trip to the server-side cursor, and written between progress updates.
BATCH_ROWS = 5_000

TEXT, INTEGER, DECIMAL = "text", "integer", "decimal"
# Text cells a spreadsheet stores as a date-time ("2026-03-01 14:05:09") or a duration ("27:04:05").
TIMESTAMP, DURATION = "timestamp", "duration"
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_APPROVING = (Approval.Decision.APPROVED, Approval.Decision.AUTO_APPROVED)
AUTO_APPROVED = "auto-approved"


# --- cells ---------------------------------------------------------------------------------


def neutralise(text: str | None) -> str | None:
    """A text cell a spreadsheet would read as a formula gets a leading apostrophe."""
    if text and text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def person_name(first: str | None, last: str | None, username: str | None) -> str | None:
    full = f"{first} {last}".strip(" ") if first is not None else ""
    return full or username


def _seconds_between(start: datetime.datetime | None, end: datetime.datetime | None) -> int | None:
    return None if start is None or end is None else (end - start) // datetime.timedelta(seconds=1)


class _Sql(Func):
    """A PostgreSQL expression written as a template over its arguments: {0}, {1}, ..."""

    def __init__(self, template: str, *expressions, output_field):
        super().__init__(*expressions, output_field=output_field)
        self.sql_template = template

    def as_sql(self, compiler, connection, **extra):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        params: list = []

        def place(match):
            sql, argument_params = compiled[int(match.group(1))]
            params.extend(argument_params)
            return sql

        return re.sub(r"\{(\d+)\}", place, self.sql_template), params


_TEXT = CharField()
_INT = BigIntegerField()
_NEUTRALISE_SQL = "CASE WHEN left({0}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN '''' || {0} ELSE {0} END"
_PERSON_SQL = "COALESCE(NULLIF(btrim({0} || ' ' || {1}), ''), {2})"


def _neutralised(expression: Expression) -> Expression:
    return _Sql(_NEUTRALISE_SQL, expression, output_field=_TEXT)


def _codes(codes: str) -> str:
    return ", ".join(f"'{code}'" for code in codes.split())


_AMOUNT_SQL = (
    f"CASE WHEN {{1}} IN ({_codes(_ZERO_DECIMAL)}) THEN {{0}}::text"
    f" WHEN {{1}} IN ({_codes(_THREE_DECIMAL)}) THEN ({{0}} / 1000)::text || '.' || lpad(({{0}} %% 1000)::text, 3, '0')"
    " ELSE ({0} / 100)::text || '.' || lpad(({0} %% 100)::text, 2, '0') END"
)
_STAMP_SQL = "to_char({0} AT TIME ZONE {1}, 'YYYY-MM-DD HH24:MI:SS')"
_SECONDS_SQL = "floor(extract(epoch from ({1} - {0})))::bigint"
_HMS_SQL = f"to_char(make_interval(secs => ({_SECONDS_SQL})::double precision), 'FMHH24:MI:SS')"


def _approvers_sql() -> Expression:
    """Approvers' names in the order they decided, one subquery per refund (no N+1)."""
    user_table = get_user_model()._meta.db_table
    decisions = ", ".join(f"'{decision}'" for decision in _APPROVING)
    names = _PERSON_SQL.format("u.first_name", "u.last_name", "u.username")
    return _Sql(
        "(SELECT " + _NEUTRALISE_SQL.format("a.names") + " FROM ("
        f"SELECT string_agg(COALESCE({names}, '{AUTO_APPROVED}'), ', ' ORDER BY ap.created_at, ap.id) AS names"
        f" FROM {Approval._meta.db_table} ap LEFT JOIN {user_table} u ON u.id = ap.approver_id"
        f" WHERE ap.refund_id = {{0}} AND ap.decision IN ({decisions})) a)",
        F("pk"),
        output_field=_TEXT,
    )


def _closer_sql(part: str) -> Expression:
    """Who rejected or canceled the refund ("name"), or why ("why"): the rejecting approval,
    or the log row that canceled it (no person: the provider canceled it). One subquery each."""
    user_table = get_user_model()._meta.db_table
    name = _PERSON_SQL.format("u.first_name", "u.last_name", "u.username")
    rejected = {"name": name, "why": "ap.comment"}[part]
    canceled = {"name": f"COALESCE({name}, {{1}})", "why": "l.message"}[part]
    return _neutralised(
        _Sql(
            f"CASE {{2}} WHEN '{RefundStatus.REJECTED}' THEN (SELECT {rejected} FROM {Approval._meta.db_table} ap"
            f" LEFT JOIN {user_table} u ON u.id = ap.approver_id WHERE ap.refund_id = {{0}}"
            f" AND ap.decision = '{Approval.Decision.REJECTED}' ORDER BY ap.created_at DESC, ap.id DESC LIMIT 1)"
            f" WHEN '{RefundStatus.CANCELED}' THEN (SELECT {canceled} FROM {RefundLog._meta.db_table} l"
            f" LEFT JOIN {user_table} u ON u.id = l.actor_id WHERE l.refund_id = {{0}}"
            f" AND l.to_status = '{RefundStatus.CANCELED}' ORDER BY l.id DESC LIMIT 1) END",
            F("pk"),
            F("provider"),
            F("status"),
            output_field=_TEXT,
        )
    )


@dataclass(frozen=True)
class Column:
    """One column of the export: its header, the database expression that computes the
    finished cell (PostgreSQL), and the same computation in Python over a raw record (other
    backends). `kind` says how a spreadsheet stores it."""

    header: str
    sql: Callable[[str], Expression]
    python: Callable[[dict, ZoneInfo], object]
    kind: str = TEXT


def _text(header: str, field: str) -> Column:
    return Column(header, lambda zone: _neutralised(F(field)), lambda r, zone: neutralise(r[field]))


def _plain(header: str, field: str) -> Column:
    """Values Refund Office itself chooses (status, currency codes): never a formula."""
    return Column(header, lambda zone: F(field), lambda r, zone: r[field])


def _timestamps(header: str, field: str) -> list[Column]:
    return [
        Column(
            f"{header} (UTC)",
            lambda zone: _Sql(_STAMP_SQL, F(field), Value("UTC"), output_field=_TEXT),
            lambda r, zone: timestamp_display(r[field], UTC),
            TIMESTAMP,
        ),
        Column(
            f"{header} (business time: {settings.REPORTS_TIME_ZONE})",
            lambda zone: _Sql(_STAMP_SQL, F(field), Value(zone), output_field=_TEXT),
            lambda r, zone: timestamp_display(r[field], zone),
            TIMESTAMP,
        ),
    ]


def export_columns() -> list[Column]:
    """What an accountant gets, in order. Business-zone headers name the zone."""
    return [
        _text("merchant_refund_id", "merchant_refund_id"),
        _text("connector_transaction_id", "connector_transaction_id"),
        _text("connector_refund_id", "connector_refund_id"),
        _plain("provider", "provider"),
        _plain("status", "status"),
        Column("amount_minor", lambda zone: F("amount_minor"), lambda r, zone: r["amount_minor"], INTEGER),
        Column(
            "amount",
            lambda zone: _Sql(_AMOUNT_SQL, F("amount_minor"), F("currency"), output_field=_TEXT),
            lambda r, zone: money_plain(r["amount_minor"], r["currency"]),
            DECIMAL,
        ),
        _plain("currency", "currency"),
        _text("reason_code", "reason_code_id"),
        _text("reason_note", "reason"),
        _text("product", "product"),
        _plain("origin", "origin"),
        Column(
            "requested_by",
            lambda zone: _neutralised(
                _Sql(
                    _PERSON_SQL,
                    F("requested_by__first_name"),
                    F("requested_by__last_name"),
                    F("requested_by__username"),
                    output_field=_TEXT,
                )
            ),
            lambda r, zone: neutralise(
                person_name(r["requested_by__first_name"], r["requested_by__last_name"], r["requested_by__username"])
            ),
        ),
        Column("approvers", lambda zone: _approvers_sql(), lambda r, zone: neutralise(r["approvers"])),
        Column("rejected_or_canceled_by", lambda zone: _closer_sql("name"), lambda r, zone: neutralise(r["closer"][0])),
        Column("rejection_or_cancel_reason", lambda zone: _closer_sql("why"), lambda r, zone: neutralise(r["closer"][1])),
        _text("failure_code", "error_code"),
        _text("failure_message", "error_message"),
        *_timestamps("requested_at", "created_at"),
        *_timestamps("approved_at", "approved_at"),
        *_timestamps("resolved_at", "resolved_at"),
        Column(
            "time_to_resolution_seconds",
            lambda zone: _Sql(_SECONDS_SQL, F("created_at"), F("resolved_at"), output_field=_INT),
            lambda r, zone: _seconds_between(r["created_at"], r["resolved_at"]),
            INTEGER,
        ),
        Column(
            "time_to_resolution",
            lambda zone: _Sql(_HMS_SQL, F("created_at"), F("resolved_at"), output_field=_TEXT),
            lambda r, zone: duration_hms(_seconds_between(r["created_at"], r["resolved_at"])),
            DURATION,
        ),
    ]


# The raw fields the Python path reads; `approvers` and `closer` are added per batch.
_RAW_FIELDS = (
    "pk", "merchant_refund_id", "connector_transaction_id", "connector_refund_id", "provider", "status",
    "amount_minor", "currency", "reason_code_id", "reason", "product", "origin", "error_code", "error_message",
    "requested_by__first_name", "requested_by__last_name", "requested_by__username",
    "created_at", "approved_at", "resolved_at",
)  # fmt: skip


# --- which refunds ---------------------------------------------------------------------------


FILTER_KEYS = (
    "requested_from", "requested_to", "resolved_from", "resolved_to",
    "status", "provider", "currency", "product", "reason_code", "origin", "q",
)  # fmt: skip


def refunds_for_export(*, user, filters: dict) -> QuerySet[RefundRequest]:
    """The refunds an export with these filters covers, oldest first. Date ranges are whole
    days in the business time zone, both ends included."""
    qs = refund_visible_to(user)
    for key, field in (("requested", "created_at"), ("resolved", "resolved_at")):
        if filters.get(f"{key}_from"):
            qs = qs.filter(**{f"{field}__gte": day_start(datetime.date.fromisoformat(filters[f"{key}_from"]))})
        if filters.get(f"{key}_to"):
            last = datetime.date.fromisoformat(filters[f"{key}_to"])
            qs = qs.filter(**{f"{field}__lt": day_start(last + datetime.timedelta(days=1))})
    if filters.get("status"):
        qs = qs.filter(status__in=filters["status"])
    for key, field in (
        ("provider", "provider"),
        ("currency", "currency"),
        ("product", "product"),
        ("reason_code", "reason_code_id"),
        ("origin", "origin"),
    ):
        if filters.get(key):
            qs = qs.filter(**{field: filters[key]})
    if filters.get("q"):
        qs = qs.filter(_search(filters["q"]))
    return qs.order_by("created_at", "id")


def _search(query: str) -> Q:
    """The refund changelist's search, term by term: exact ids, or a product containing it."""
    condition = Q()
    for term in smart_split(query):
        if term.startswith(('"', "'")) and term[0] == term[-1]:
            term = unescape_string_literal(term)
        condition &= (
            Q(merchant_refund_id__iexact=term)
            | Q(connector_transaction_id__iexact=term)
            | Q(connector_refund_id__iexact=term)
            | Q(product__icontains=term)
        )
    return condition


# --- rows ----------------------------------------------------------------------------------


def export_headers(columns: list[Column] | None = None) -> list[str]:
    return [column.header for column in columns or export_columns()]


def export_rows(qs: QuerySet[RefundRequest], *, in_database: bool | None = None) -> Iterator[list[tuple]]:
    """The finished rows, in batches of up to BATCH_ROWS, read with a server-side cursor so
    memory stays flat however many there are. `in_database` picks the path (default: the
    database computes the cells when it is PostgreSQL)."""
    zone = settings.REPORTS_TIME_ZONE
    columns = export_columns()
    if in_database is None:
        in_database = connections[qs.db].vendor == "postgresql"
    if in_database:
        names = [f"c{index}" for index in range(len(columns))]
        annotated = qs.annotate(**{name: column.sql(zone) for name, column in zip(names, columns, strict=True)})
        rows = annotated.values_list(*names).iterator(chunk_size=BATCH_ROWS)
        while batch := list(islice(rows, BATCH_ROWS)):
            yield batch
        return
    zoneinfo = business_zone(zone)
    records = qs.values(*_RAW_FIELDS).iterator(chunk_size=BATCH_ROWS)
    while batch := list(islice(records, BATCH_ROWS)):
        approvers = _approvers_by_refund([record["pk"] for record in batch])
        closers = _closers_by_refund(batch)
        rows = []
        for record in batch:
            record["approvers"] = approvers.get(record["pk"])
            record["closer"] = closers.get(record["pk"], (None, None))
            rows.append(tuple(column.python(record, zoneinfo) for column in columns))
        yield rows


def _approvers_by_refund(refund_ids: list[int]) -> dict[int, str]:
    names: dict[int, list[str]] = {}
    approvals = (
        Approval.objects.filter(refund_id__in=refund_ids, decision__in=_APPROVING)
        .order_by("refund_id", "created_at", "id")
        .values_list("refund_id", "approver__first_name", "approver__last_name", "approver__username")
    )
    for refund_id, first, last, username in approvals:
        names.setdefault(refund_id, []).append(person_name(first, last, username) or AUTO_APPROVED)
    return {refund_id: ", ".join(each) for refund_id, each in names.items()}


def _closers_by_refund(batch: list[dict]) -> dict[int, tuple[str | None, str | None]]:
    """Who rejected or canceled each refund of the batch and why (two queries a batch)."""
    closers: dict[int, tuple[str | None, str | None]] = {}
    rejected = [r["pk"] for r in batch if r["status"] == RefundStatus.REJECTED]
    for refund_id, first, last, username, comment in (
        Approval.objects.filter(refund_id__in=rejected, decision=Approval.Decision.REJECTED)
        .order_by("refund_id", "created_at", "id")
        .values_list("refund_id", "approver__first_name", "approver__last_name", "approver__username", "comment")
    ):
        closers[refund_id] = (person_name(first, last, username), comment)  # the latest wins
    provider = {r["pk"]: r["provider"] for r in batch if r["status"] == RefundStatus.CANCELED}
    for refund_id, first, last, username, message in (
        RefundLog.objects.filter(refund_id__in=list(provider), to_status=RefundStatus.CANCELED)
        .order_by("refund_id", "id")
        .values_list("refund_id", "actor__first_name", "actor__last_name", "actor__username", "message")
    ):
        closers[refund_id] = (person_name(first, last, username) or provider[refund_id], message)
    return closers
