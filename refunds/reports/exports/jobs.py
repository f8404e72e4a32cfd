"""Export jobs: queued by a person, written by a worker into ExportChunk rows (the file kept
in the database in chunks, so any web process can serve what any worker wrote), swept when
a worker or a broker message was lost, and deleted a week after they finished."""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q
from django.utils import timezone

from refunds import errors
from refunds.models import ExportChunk, ExportJob
from refunds.publish import enqueue_on_commit
from refunds.reports.calendar import business_zone
from refunds.reports.exports import query, writers

logger = logging.getLogger(__name__)

# The produced file is stored in pieces of this size, each in its own short transaction.
CHUNK_BYTES = 1024 * 1024
# A running job whose worker has not reported for this long is taken over and started again.
STALE_AFTER = timedelta(minutes=3)
# A queued job no worker has claimed for this long is sent to the workers again (lost message).
QUEUED_RESEND_AFTER = timedelta(seconds=60)
# Finished exports (their files) are deleted this long after they finished.
KEEP_FOR = timedelta(days=7)


def export_job_create(*, user, format: str, filters: dict) -> ExportJob:
    """Queue an export of the refunds `filters` select; a worker writes it after commit."""

    if not user.has_perm("refunds.export_refundrequests"):
        raise errors.PermissionDenied("You may not export refunds.")
    if format not in ExportJob.Format.values:
        raise errors.RefundValidationError(f"Unknown format {format!r}.", field="format")
    unknown = set(filters) - set(query.FILTER_KEYS)
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
        qs = query.refunds_for_export(user=user, filters=filters)
        yield qs.count(), query.export_rows(qs)
        return
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)
    stop = threading.Event()

    def read():
        try:
            with transaction.atomic():
                with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                qs = query.refunds_for_export(user=user, filters=filters)
                ready.put(("count", qs.count()))
                for batch in query.export_rows(qs):
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
                writers.write_csv(batches, query.export_headers(), sink, on_batch=sink.progress)
        stamp = timezone.localtime(job.created_at, business_zone()).strftime("%Y%m%d-%H%M")
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
        rows = writers.write_xlsx(batches, query.export_columns(), path, on_batch=sink.progress)
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

