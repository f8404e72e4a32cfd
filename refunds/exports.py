"""Refund exports for accountants (CSV, XLSX): one column list, one row stream, and the file
kept in the database in chunks, so any web process can serve what any worker wrote.

Speed: on PostgreSQL the database computes every finished cell (decimal amounts from the
integers, timestamps in UTC and in the business zone, time to resolution, approvers, formula
injection neutralised), so Python hands each batch of rows from the server-side cursor to
`csv.writer.writerows` without touching a row. Other backends (SQLite in development) compute
the same cells in Python from the raw fields; a test holds both paths to the same output.
"""

from __future__ import annotations

import csv
import io
import logging
import queue
import re
import threading
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import islice
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import BigIntegerField, CharField, Expression, F, Func, Q, QuerySet, Value
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal

from approvals.models import Approval
from refunds import errors
from refunds.models import ExportChunk, ExportJob, RefundRequest
from refunds.publish import enqueue_on_commit
from refunds.money import _THREE_DECIMAL, _ZERO_DECIMAL, minor_to_decimal
from refunds.selectors import refund_visible_to

logger = logging.getLogger(__name__)

# Rows read per round trip to the server-side cursor, and written between progress updates.
BATCH_ROWS = 5_000
# The produced file is stored in pieces of this size, each in its own short transaction.
CHUNK_BYTES = 1024 * 1024
# A running job whose worker has not reported for this long is taken over and started again.
STALE_AFTER = timedelta(minutes=3)
# A queued job no worker has claimed for this long is sent to the workers again (lost message).
QUEUED_RESEND_AFTER = timedelta(seconds=60)
# Finished exports (their files) are deleted this long after they finished.
KEEP_FOR = timedelta(days=7)
# Excel's limit per sheet, header included: the export continues on a new sheet.
XLSX_MAX_ROWS = 1_048_576

TEXT, INTEGER, DECIMAL = "text", "integer", "decimal"
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


def _stamp(value: datetime | None, zone: ZoneInfo) -> str | None:
    return None if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    return None if start is None or end is None else (end - start) // timedelta(seconds=1)


def _hms(seconds: int | None) -> str | None:
    return None if seconds is None else f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


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
            lambda r, zone: _stamp(r[field], UTC),
        ),
        Column(
            f"{header} (business time: {settings.REPORTS_TIME_ZONE})",
            lambda zone: _Sql(_STAMP_SQL, F(field), Value(zone), output_field=_TEXT),
            lambda r, zone: _stamp(r[field], zone),
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
            lambda r, zone: f"{minor_to_decimal(r['amount_minor'], r['currency']):f}",
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
            lambda r, zone: _hms(_seconds_between(r["created_at"], r["resolved_at"])),
        ),
    ]


# The raw fields the Python path reads; `approvers` is added per batch.
_RAW_FIELDS = (
    "pk", "merchant_refund_id", "connector_transaction_id", "connector_refund_id", "provider", "status",
    "amount_minor", "currency", "reason_code_id", "reason", "product", "origin",
    "requested_by__first_name", "requested_by__last_name", "requested_by__username",
    "created_at", "approved_at", "resolved_at",
)  # fmt: skip


# --- which refunds ---------------------------------------------------------------------------


FILTER_KEYS = (
    "requested_from", "requested_to", "resolved_from", "resolved_to",
    "status", "provider", "currency", "product", "reason_code", "origin", "q",
)  # fmt: skip


def _day_start(day: str, zone: ZoneInfo, *, plus_days: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day) + timedelta(days=plus_days), time.min, tzinfo=zone)


def refunds_for_export(*, user, filters: dict) -> QuerySet[RefundRequest]:
    """The refunds an export with these filters covers, oldest first. Date ranges are whole
    days in the business time zone, both ends included."""
    zone = ZoneInfo(settings.REPORTS_TIME_ZONE)
    qs = refund_visible_to(user)
    for key, field in (("requested", "created_at"), ("resolved", "resolved_at")):
        if filters.get(f"{key}_from"):
            qs = qs.filter(**{f"{field}__gte": _day_start(filters[f"{key}_from"], zone)})
        if filters.get(f"{key}_to"):
            qs = qs.filter(**{f"{field}__lt": _day_start(filters[f"{key}_to"], zone, plus_days=1)})
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
    zoneinfo = ZoneInfo(zone)
    records = qs.values(*_RAW_FIELDS).iterator(chunk_size=BATCH_ROWS)
    while batch := list(islice(records, BATCH_ROWS)):
        approvers = _approvers_by_refund([record["pk"] for record in batch])
        rows = []
        for record in batch:
            record["approvers"] = approvers.get(record["pk"])
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


# --- writers ---------------------------------------------------------------------------------


def write_csv(batches: Iterable[list[tuple]], headers: list[str], out, *, on_batch=None) -> int:
    """CSV (RFC 4180, UTF-8 with a byte order mark so Excel reads accents) into the binary
    stream `out`, one batch at a time. Returns the number of rows."""
    text = io.StringIO()
    writer = csv.writer(text)
    text.write("\ufeff")
    writer.writerow(headers)
    rows = 0
    for batch in batches:
        writer.writerows(batch)
        rows += len(batch)
        out.write(text.getvalue().encode())
        text.seek(0)
        text.truncate()
        if on_batch:
            on_batch(rows)
    out.write(text.getvalue().encode())
    return rows


def write_xlsx(batches: Iterable[list[tuple]], columns: list[Column], path: str, *, on_batch=None) -> int:
    """An XLSX workbook at `path`, written row by row (constant memory); past Excel's
    1,048,576 rows a sheet, the rows continue on a new sheet with the header again."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "tmpdir": tempfile.gettempdir()})
    bold = workbook.add_format({"bold": True})
    decimals = {places: workbook.add_format({"num_format": "0." + "0" * places if places else "0"}) for places in (0, 1, 2, 3, 4)}
    kinds = [column.kind for column in columns]
    headers = [column.header for column in columns]
    sheet, sheet_row, rows = None, XLSX_MAX_ROWS, 0
    for batch in batches:
        for row in batch:
            if sheet_row >= XLSX_MAX_ROWS:
                count = len(workbook.worksheets())
                sheet = workbook.add_worksheet(f"Refunds {count + 1}" if count else "Refunds")
                sheet.write_row(0, 0, headers, bold)
                sheet_row = 1
            for index, value in enumerate(row):
                if value is None or value == "":
                    continue
                kind = kinds[index]
                if kind == INTEGER:
                    sheet.write_number(sheet_row, index, value)
                elif kind == DECIMAL:
                    places = len(value.partition(".")[2])
                    sheet.write_number(sheet_row, index, _decimal_number(value), decimals.get(places))
                else:
                    sheet.write_string(sheet_row, index, value)
            sheet_row += 1
        rows += len(batch)
        if on_batch:
            on_batch(rows)
    if sheet is None:
        sheet = workbook.add_worksheet("Refunds")
        sheet.write_row(0, 0, headers, bold)
    workbook.close()
    return rows


def _decimal_number(text: str) -> Decimal:
    # A spreadsheet number is a binary double whatever we do; XlsxWriter writes it with 16
    # significant digits, which holds every amount we export exactly as text.
    return Decimal(text)


# --- the job ---------------------------------------------------------------------------------


def export_job_create(*, user, format: str, filters: dict) -> ExportJob:
    """Queue an export of the refunds `filters` select; a worker writes it after commit."""

    if not user.has_perm("refunds.export_refundrequests"):
        raise errors.PermissionDenied("You may not export refunds.")
    if format not in ExportJob.Format.values:
        raise errors.RefundValidationError(f"Unknown format {format!r}.", field="format")
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise errors.RefundValidationError(f"Unknown filter {sorted(unknown)[0]!r}.", field="filters")
    with transaction.atomic():
        job = ExportJob.objects.create(requested_by=user, format=format, filters=filters)
        enqueue_on_commit("export_job_run_task", job.pk)
    return job


class _LostClaim(Exception):
    """Another worker took the job over (ours was thought dead): stop writing."""


class _ChunkSink:
    """The file as it is written: bytes go into a buffer, and each full CHUNK_BYTES is stored
    as an ExportChunk in a short transaction together with the job's progress. Every write is
    conditional on still holding the claim (state running, our started_at)."""

    def __init__(self, job: ExportJob):
        self.job_id = job.pk
        self.claim = job.started_at
        self.buffer = bytearray()
        self.seq = 0
        self.bytes_written = 0
        self.rows_written = 0

    def write(self, data: bytes) -> None:
        self.buffer += data

    def progress(self, rows_written: int) -> None:
        self.rows_written = rows_written
        pieces = []
        while len(self.buffer) >= CHUNK_BYTES:
            pieces.append(bytes(self.buffer[:CHUNK_BYTES]))
            del self.buffer[:CHUNK_BYTES]
        self._commit(pieces)

    def finish(self, file_name: str) -> None:
        pieces = [bytes(self.buffer)] if self.buffer else []
        self.buffer = bytearray()
        self._commit(pieces, state=ExportJob.State.DONE, file_name=file_name, finished_at=timezone.now())

    def _commit(self, pieces: list[bytes], **fields) -> None:
        with transaction.atomic():
            held = ExportJob.objects.filter(pk=self.job_id, state=ExportJob.State.RUNNING, started_at=self.claim).update(
                rows_written=self.rows_written,
                bytes_written=self.bytes_written + sum(map(len, pieces)),
                progress_at=timezone.now(),
                **fields,
            )
            if not held:
                raise _LostClaim
            chunks = []
            for piece in pieces:
                chunks.append((self.job_id, self.seq, piece))
                self.seq += 1
                self.bytes_written += len(piece)
            _chunks_insert(chunks)


def _chunks_insert(chunks: list[tuple[int, int, bytes]]) -> None:
    if not chunks:
        return
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        ExportChunk.objects.bulk_create([ExportChunk(job_id=job, seq=seq, data=data) for job, seq, data in chunks])
        return
    import psycopg

    # Django's psycopg cursors bind parameters client-side: a 1 MiB chunk would travel as
    # 2 MiB of hex text for the server to parse back. A server-side-binding cursor on the same
    # connection (so in the same transaction) sends it as binary: 3x faster (bench/README.md).
    db.ensure_connection()
    with psycopg.Cursor(db.connection) as cursor:
        cursor.executemany(
            f"INSERT INTO {ExportChunk._meta.db_table} (job_id, seq, data) VALUES (%s, %s, %b)", chunks
        )


def _claim(job_id: int) -> ExportJob | None:
    """queued → running, or take over a running job whose worker stopped reporting (its
    chunks are deleted: it starts again). Anything else, or a job another worker is claiming
    right now, is left alone, so a duplicated task never writes a second file."""
    now = timezone.now()
    with transaction.atomic():
        job = ExportJob.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
        if job is None:
            return None
        stale = job.state == ExportJob.State.RUNNING and (job.progress_at is None or job.progress_at < now - STALE_AFTER)
        if job.state != ExportJob.State.QUEUED and not stale:
            return None
        if stale:
            logger.warning("export %s: its worker stopped reporting; starting it again", job.pk)
            ExportChunk.objects.filter(job=job).delete()
        job.state = ExportJob.State.RUNNING
        job.started_at = job.progress_at = now
        job.rows_written = job.bytes_written = 0
        job.finished_at = None
        job.error = ""
        job.save(update_fields=["state", "started_at", "progress_at", "rows_written", "bytes_written", "finished_at", "error"])
    return job


# Batches the reading thread may hold ready ahead of the writer (memory stays bounded).
PREFETCH_BATCHES = 4


@contextmanager
def export_reading(*, user, filters: dict) -> Iterator[tuple[int, Iterator[list[tuple]]]]:
    """Yields (how many rows, the batches of finished rows) for an export.

    On PostgreSQL outside a transaction (a worker), a thread of its own reads on its own
    connection, in one read-only REPEATABLE READ transaction (the count and the rows come from
    one snapshot), up to PREFETCH_BATCHES ahead: the database computes the next rows while this
    thread writes the file, and the job's progress and chunks are committed meanwhile on this
    thread's connection in short transactions. The cursor is declared inside that
    transaction, so PostgreSQL hands rows over as it produces them (Django's iterator() in
    autocommit declares it WITH HOLD, which makes PostgreSQL compute the whole result first).
    Inside a caller's transaction (tests), or on another database, it reads in this thread."""
    default = connections[DEFAULT_DB_ALIAS]
    if default.vendor != "postgresql" or default.in_atomic_block:
        qs = refunds_for_export(user=user, filters=filters)
        yield qs.count(), export_rows(qs)
        return
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)
    stop = threading.Event()

    def read():
        try:
            with transaction.atomic():
                with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                qs = refunds_for_export(user=user, filters=filters)
                ready.put(("count", qs.count()))
                for batch in export_rows(qs):
                    if stop.is_set():
                        return
                    ready.put(("rows", batch))
            ready.put(("end", None))
        except Exception as error:  # noqa: BLE001 - handed to the writing thread, raised there
            ready.put(("error", error))
        finally:
            connections.close_all()  # this thread's connections only

    def batches():
        while True:
            kind, value = ready.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value

    reader = threading.Thread(target=read, name="export-reader", daemon=True)
    reader.start()
    try:
        kind, value = ready.get()
        if kind == "error":
            raise value
        yield value, batches()
    finally:
        stop.set()
        while reader.is_alive():  # free a reader blocked on a full queue, so it sees `stop`
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
        reader.join()


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Write the job's file into ExportChunk rows, reporting progress per batch. A failure
    marks the job failed with a readable message. Returns the job if this call wrote it."""
    job = _claim(job_id)
    if job is None:
        return None
    sink = _ChunkSink(job)
    try:
        # Checked again when the work starts: a job queued by someone whose access was
        # withdrawn since (left the team, role changed) must not produce their file.
        requester = job.requested_by
        if not (requester.is_active and requester.has_perm("refunds.export_refundrequests")):
            raise errors.PermissionDenied(f"{requester.get_username()} may no longer export refunds")
        with export_reading(user=job.requested_by, filters=job.filters) as (count, batches):
            ExportJob.objects.filter(pk=job.pk, started_at=sink.claim).update(rows_expected=count)
            if job.format == ExportJob.Format.XLSX:
                _run_xlsx(batches, sink)
            else:
                write_csv(batches, export_headers(), sink, on_batch=sink.progress)
        stamp = timezone.localtime(job.created_at, ZoneInfo(settings.REPORTS_TIME_ZONE)).strftime("%Y%m%d-%H%M")
        sink.finish(f"refunds-{stamp}-{job.pk}.{job.format}")
    except _LostClaim:
        logger.warning("export %s was taken over by another worker; this one stops", job.pk)
        return None
    except Exception as error:  # noqa: BLE001 - any failure becomes a visible, failed job
        logger.exception("export %s failed", job.pk)
        ExportJob.objects.filter(pk=job.pk, state=ExportJob.State.RUNNING, started_at=sink.claim).update(
            state=ExportJob.State.FAILED,
            error=f"The export failed: {type(error).__name__}: {error}"[:500],
            finished_at=timezone.now(),
            progress_at=timezone.now(),
        )
        return None
    job.refresh_from_db()
    return job


def _run_xlsx(batches: Iterable[list[tuple]], sink: _ChunkSink) -> None:
    # XLSX is a zip: it is written whole to a temporary file on the worker, then copied into
    # chunks. Progress per batch keeps the heartbeat going meanwhile.
    with tempfile.TemporaryDirectory(prefix="export-") as directory:
        path = f"{directory}/export.xlsx"
        rows = write_xlsx(batches, export_columns(), path, on_batch=sink.progress)
        with open(path, "rb") as workbook:
            while piece := workbook.read(CHUNK_BYTES):
                sink.write(piece)
                sink.progress(rows)


def export_jobs_sweep() -> dict[str, list[int]]:
    """Jobs the database says need a worker but none holds: queued ones whose message was
    lost, running ones whose worker died. Each is sent again; the claim makes a duplicate
    harmless. Finished jobs older than KEEP_FOR are deleted with their files."""

    now = timezone.now()
    resend_before = now - QUEUED_RESEND_AFTER
    with transaction.atomic():
        queued = list(
            ExportJob.objects.select_for_update(skip_locked=True)
            .filter(state=ExportJob.State.QUEUED, created_at__lt=resend_before)
            .filter(Q(progress_at__isnull=True) | Q(progress_at__lt=resend_before))
            .values_list("pk", flat=True)[:100]
        )
        # progress_at of a queued job is when it was last sent: once per QUEUED_RESEND_AFTER.
        ExportJob.objects.filter(pk__in=queued).update(progress_at=now)
        stale = list(
            ExportJob.objects.filter(state=ExportJob.State.RUNNING, progress_at__lt=now - STALE_AFTER).values_list(
                "pk", flat=True
            )[:100]
        )
        for job_id in (*queued, *stale):
            enqueue_on_commit("export_job_run_task", job_id)
    # Files of a few hundred MB each: kept a week, then deleted, a few jobs per sweep.
    expired = list(
        ExportJob.objects.filter(
            state__in=[ExportJob.State.DONE, ExportJob.State.FAILED], finished_at__lt=now - KEEP_FOR
        ).values_list("pk", flat=True)[:10]
    )
    for job_id in expired:
        with transaction.atomic():
            ExportJob.objects.filter(pk=job_id).delete()
    return {"queued": queued, "stale": stale, "expired": expired}


def export_chunks(job: ExportJob) -> Iterator[bytes]:
    """The stored file, piece by piece: one short query per chunk, so a download holds no
    cursor or transaction open while the client reads."""
    for seq in ExportChunk.objects.filter(job=job).order_by("seq").values_list("seq", flat=True):
        yield bytes(ExportChunk.objects.filter(job=job, seq=seq).values_list("data", flat=True).get())

