"""Refund export jobs: chunks, claims, failures, permissions, the sweeper, two workers at once."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from refunds import errors
from refunds.models import ExportChunk, ExportJob
from refunds.reports.exports import jobs, query
from tests.reports.exporting import (  # noqa: F401 - export is a fixture
    csv_rows,
    export,
    exported_ids,
    file_bytes,
    refund,
)

pytestmark = pytest.mark.django_db


# --- the job ---------------------------------------------------------------------------------


def test_a_large_file_is_stored_in_chunks_with_progress(export, monkeypatch):
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(query, "BATCH_ROWS", 7)
    progress = []
    real_commit = jobs._ChunkSink._commit

    def spy(sink, pieces, **fields):
        real_commit(sink, pieces, **fields)
        progress.append(ExportJob.objects.values_list("rows_written", "bytes_written").get(pk=sink.job_id))

    monkeypatch.setattr(jobs._ChunkSink, "_commit", spy)
    for n in range(40):
        refund(f"big-{n:02d}", product="Widget " * 10)

    job = export()

    chunks = list(ExportChunk.objects.filter(job=job).order_by("seq").values_list("seq", "data"))
    assert [seq for seq, _ in chunks] == list(range(len(chunks))) and len(chunks) > 3
    assert all(len(data) == 1000 for _, data in chunks[:-1])
    assert [row for row, _ in progress] == [7, 14, 21, 28, 35, 40, 40]  # per batch, then done
    assert job.bytes_written == sum(len(data) for _, data in chunks) == len(file_bytes(job))
    assert [row["merchant_refund_id"] for row in csv_rows(job)] == [f"big-{n:02d}" for n in range(40)]


def test_a_duplicated_task_writes_the_file_once(export):
    refund("once")
    job = export()
    before = list(ExportChunk.objects.filter(job=job).values_list("pk", flat=True))

    assert jobs.export_job_run(job_id=job.pk) is None

    assert list(ExportChunk.objects.filter(job=job).values_list("pk", flat=True)) == before
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE


def test_a_running_job_is_left_alone_until_its_worker_stops_reporting(accountant):
    refund("r1")
    job = ExportJob.objects.create(
        requested_by=accountant, format="csv", state=ExportJob.State.RUNNING,
        started_at=timezone.now(), progress_at=timezone.now(), rows_written=1,
    )  # fmt: skip
    ExportChunk.objects.create(job=job, seq=0, data=b"half a file from a dead worker")

    assert jobs.export_job_run(job_id=job.pk) is None  # its worker is alive
    assert ExportChunk.objects.filter(job=job).count() == 1

    ExportJob.objects.filter(pk=job.pk).update(progress_at=timezone.now() - jobs.STALE_AFTER - timedelta(seconds=1))
    taken_over = jobs.export_job_run(job_id=job.pk)

    assert taken_over.state == ExportJob.State.DONE and taken_over.rows_written == 1
    assert b"half a file" not in file_bytes(taken_over) and b"r1" in file_bytes(taken_over)


def test_a_worker_that_lost_its_claim_stops_writing(export, monkeypatch, accountant):
    for n in range(3):
        refund(f"lost-{n}")
    monkeypatch.setattr(query, "BATCH_ROWS", 1)
    job = ExportJob.objects.create(requested_by=accountant, format="csv")
    real_progress = jobs._ChunkSink.progress

    def taken_over_midway(sink, rows):
        if rows == 2:  # another worker took the job over meanwhile (new claim)
            ExportJob.objects.filter(pk=sink.job_id).update(started_at=timezone.now())
        real_progress(sink, rows)

    monkeypatch.setattr(jobs._ChunkSink, "progress", taken_over_midway)

    assert jobs.export_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.state == ExportJob.State.RUNNING and job.rows_written == 1  # left for its new owner


def test_a_failure_marks_the_job_failed_with_a_readable_error(accountant, monkeypatch, django_capture_on_commit_callbacks):
    refund("boom")

    def broken(qs, **kwargs):
        raise RuntimeError("the database went away")
        yield

    monkeypatch.setattr(query, "export_rows", broken)
    with django_capture_on_commit_callbacks(execute=False):
        job = jobs.export_job_create(user=accountant, format="csv", filters={})

    jobs.export_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == ExportJob.State.FAILED and job.finished_at is not None
    assert job.error == "The export failed: RuntimeError: the database went away"


def test_only_exporters_may_create_jobs(agent):
    with pytest.raises(errors.PermissionDenied):
        jobs.export_job_create(user=agent, format="csv", filters={})
    assert not ExportJob.objects.exists()


def test_a_job_whose_requester_lost_export_access_before_it_ran_writes_nothing(accountant, django_capture_on_commit_callbacks):
    refund("r-1")
    with django_capture_on_commit_callbacks(execute=False):
        job = jobs.export_job_create(user=accountant, format="csv", filters={})
    accountant.groups.clear()  # moved to another team while the job waited in the queue

    jobs.export_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == ExportJob.State.FAILED
    assert "may no longer export refunds" in job.error
    assert not job.chunks.exists()


def test_the_sweeper_resends_lost_and_stale_jobs_once_per_period(accountant, django_capture_on_commit_callbacks):
    long_ago = timezone.now() - timedelta(minutes=10)
    lost = ExportJob.objects.create(requested_by=accountant, format="csv")
    fresh = ExportJob.objects.create(requested_by=accountant, format="csv")
    dead = ExportJob.objects.create(
        requested_by=accountant, format="csv", state=ExportJob.State.RUNNING, started_at=long_ago, progress_at=long_ago
    )
    ExportJob.objects.filter(pk=lost.pk).update(created_at=long_ago)

    with django_capture_on_commit_callbacks(execute=False) as sent:
        swept = jobs.export_jobs_sweep()
    with django_capture_on_commit_callbacks(execute=False) as sent_again:
        swept_again = jobs.export_jobs_sweep()

    assert swept == {"queued": [lost.pk], "stale": [dead.pk], "expired": []} and len(sent) == 2
    assert swept_again == {"queued": [], "stale": [dead.pk], "expired": []} and len(sent_again) == 1
    assert fresh.pk not in swept["queued"]


def test_finished_exports_are_deleted_after_a_week(export):
    refund("old")
    old, recent = export(), export()
    ExportJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - jobs.KEEP_FOR - timedelta(minutes=1))

    swept = jobs.export_jobs_sweep()

    assert swept["expired"] == [old.pk]
    assert list(ExportJob.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not ExportChunk.objects.filter(job_id=old.pk).exists() and ExportChunk.objects.filter(job=recent).exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_running_the_same_job_at_once_write_one_file(accountant):
    for n in range(50):
        refund(f"race-{n:02d}")
    job = ExportJob.objects.create(requested_by=accountant, format="csv")
    barrier = threading.Barrier(4)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(jobs.export_job_run(job_id=job.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(result is not None for result in results) == 1
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE and job.rows_written == 50
    assert exported_ids(job) == [f"race-{n:02d}" for n in range(50)]
