"""Refund exports: what the file holds (columns, decimals, time zones, approvers, filters,
formula injection) and how a job runs (chunks, claims, failures, the sweeper)."""

import csv
import io
import threading
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import Approval
from refunds import errors
from refunds.models import ExportChunk, ExportJob, RefundOrigin, RefundRequest, RefundStatus
from refunds.reports.exports import jobs, query, writers
from tests.factories import PaymentFactory, RefundFactory, UserFactory, agent

pytestmark = pytest.mark.django_db

NY = "America/New_York"
BT = f"(business time: {NY})"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def requester():
    """One support agent files the tests' refunds (a user per refund costs a password hash each)."""
    return get_user_model().objects.filter(username="filer").first() or agent(username="filer")


def refund(merchant_refund_id: str, **fields) -> RefundRequest:
    """A refund as a test describes it; created_at (auto) is set afterwards."""
    created_at = fields.pop("created_at", None)
    fields.setdefault("requested_by", requester())
    currency = fields.get("currency", "USD")
    fields.setdefault("payment", PaymentFactory(currency=currency))
    row = RefundFactory(merchant_refund_id=merchant_refund_id, **fields)
    if created_at is not None:
        RefundRequest.objects.filter(pk=row.pk).update(created_at=created_at)
        row.refresh_from_db()
    return row


def run_export(user, django_capture_on_commit_callbacks, fmt="csv", **filters) -> ExportJob:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = jobs.export_job_create(user=user, format=fmt, filters=filters)
    assert len(callbacks) == 1  # the task is sent once the job is committed
    jobs.export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE, job.error
    return job


def file_bytes(job: ExportJob) -> bytes:
    return b"".join(jobs.export_chunks(job))


def csv_rows(job: ExportJob) -> list[dict]:
    text = file_bytes(job).decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads the accents right
    return list(csv.DictReader(io.StringIO(text[1:])))


def exported_ids(job: ExportJob) -> list[str]:
    return [row["merchant_refund_id"] for row in csv_rows(job)]


@pytest.fixture
def export(accountant, django_capture_on_commit_callbacks):
    def make(fmt="csv", user=None, **filters):
        return run_export(user or accountant, django_capture_on_commit_callbacks, fmt, **filters)

    return make


@pytest.fixture
def new_york(settings):
    settings.REPORTS_TIME_ZONE = NY


# --- what the file holds -------------------------------------------------------------------


def test_columns_and_amounts_as_decimals_with_each_currencys_exponent(export):
    refund("jpy", amount_minor=1500, currency="JPY", created_at=at("2026-03-01 10:00:00"))
    refund("usd", amount_minor=1234, currency="USD", created_at=at("2026-03-01 11:00:00"))
    refund("usd-cents", amount_minor=5, currency="USD", created_at=at("2026-03-01 12:00:00"))
    refund("kwd", amount_minor=1234, currency="KWD", created_at=at("2026-03-01 13:00:00"))

    job = export()

    rows = csv_rows(job)
    assert list(rows[0]) == [
        "merchant_refund_id", "connector_transaction_id", "connector_refund_id", "provider", "status",
        "amount_minor", "amount", "currency", "reason_code", "reason_note", "product", "origin",
        "requested_by", "approvers", "requested_at (UTC)", "requested_at (business time: UTC)", "approved_at (UTC)",
        "approved_at (business time: UTC)", "resolved_at (UTC)", "resolved_at (business time: UTC)", "time_to_resolution_seconds",
        "time_to_resolution",
    ]  # fmt: skip
    amounts = [(r["merchant_refund_id"], r["amount_minor"], r["amount"], r["currency"]) for r in rows]
    assert amounts == [
        ("jpy", "1500", "1500", "JPY"),
        ("usd", "1234", "12.34", "USD"),
        ("usd-cents", "5", "0.05", "USD"),
        ("kwd", "1234", "1.234", "KWD"),
    ]
    assert (job.rows_expected, job.rows_written, job.bytes_written) == (4, 4, len(file_bytes(job)))
    assert job.file_name.endswith(f"-{job.pk}.csv")


def test_timestamps_in_utc_and_the_business_zone_and_time_to_resolution(export, new_york):
    row = refund("ny", status=RefundStatus.SUCCEEDED, created_at=at("2026-03-01 14:05:09.700000"))
    # Approved in winter time (UTC-5), resolved after the switch to summer time (UTC-4).
    RefundRequest.objects.filter(pk=row.pk).update(
        approved_at=at("2026-03-02 03:00:00"), resolved_at=at("2026-03-09 12:00:00")
    )
    refund("open", created_at=at("2026-03-10 00:30:00"))

    [done, still_open] = csv_rows(export())

    assert done["requested_at (UTC)"] == "2026-03-01 14:05:09"
    assert done[f"requested_at {BT}"] == "2026-03-01 09:05:09"
    assert done[f"approved_at {BT}"] == "2026-03-01 22:00:00"
    assert done["resolved_at (UTC)"] == "2026-03-09 12:00:00"
    assert done[f"resolved_at {BT}"] == "2026-03-09 08:00:00"
    # 7 days 21:54:50.3 -> whole seconds
    assert done["time_to_resolution_seconds"] == str(7 * 86400 + 21 * 3600 + 54 * 60 + 50)
    assert done["time_to_resolution"] == "189:54:50"
    assert still_open[f"requested_at {BT}"] == "2026-03-09 20:30:00"
    assert (still_open["resolved_at (UTC)"], still_open["time_to_resolution"]) == ("", "")


def test_ids_reason_product_requester_and_approvers(export, manager, manager2):
    manager.first_name, manager.last_name = "Maria", "Lopez"
    manager.save(update_fields=["first_name", "last_name"])
    requester = UserFactory(username="sam", first_name="Sam", last_name="Okafor")
    two = refund(
        "two-approvers", requested_by=requester, connector_refund_id="re_123", reason_code_id="product_return",
        reason="Arrived broken", product="Blue mug", status=RefundStatus.SUCCEEDED,
    )  # fmt: skip
    Approval.objects.create(refund=two, approver=manager2, decision=Approval.Decision.APPROVED, tier=1)
    Approval.objects.create(refund=two, approver=manager, decision=Approval.Decision.APPROVED, tier=2)
    auto = refund("auto", requested_by=requester)
    Approval.objects.create(refund=auto, approver=None, decision=Approval.Decision.AUTO_APPROVED)
    rejected = refund("rejected", requested_by=requester, status=RefundStatus.REJECTED)
    Approval.objects.create(refund=rejected, approver=manager, decision=Approval.Decision.REJECTED, comment="no")
    refund("external", requested_by=None, origin=RefundOrigin.EXTERNAL)

    rows = {row["merchant_refund_id"]: row for row in csv_rows(export())}

    assert {k: rows["two-approvers"][k] for k in ("connector_transaction_id", "connector_refund_id", "provider")} == {
        "connector_transaction_id": two.connector_transaction_id,
        "connector_refund_id": "re_123",
        "provider": "stripe",
    }
    assert (rows["two-approvers"]["reason_code"], rows["two-approvers"]["reason_note"]) == ("product_return", "Arrived broken")
    assert (rows["two-approvers"]["product"], rows["two-approvers"]["status"]) == ("Blue mug", "succeeded")
    assert rows["two-approvers"]["requested_by"] == "Sam Okafor"
    assert rows["two-approvers"]["approvers"] == "manager2, Maria Lopez"  # in the order they approved
    assert rows["auto"]["approvers"] == "auto-approved"
    assert rows["rejected"]["approvers"] == ""  # a rejection approves nothing
    assert (rows["external"]["requested_by"], rows["external"]["origin"]) == ("", "external")


def test_approvers_cost_no_query_per_refund(manager):
    def queries_for(count):
        for n in range(count):
            row = refund(f"q{count}-{n}")
            Approval.objects.create(refund=row, approver=manager, decision=Approval.Decision.APPROVED)
        qs = RefundRequest.objects.filter(merchant_refund_id__startswith=f"q{count}-")
        for in_database in (True, False):
            with CaptureQueriesContext(connection) as queries:
                rows = [row for batch in query.export_rows(qs, in_database=in_database) for row in batch]
            assert len(rows) == count
            yield len(queries)

    assert list(queries_for(2)) == list(queries_for(40))


def test_python_path_gives_the_same_cells_as_the_database(manager, new_york):
    """Other databases (SQLite) compute the cells in Python: same file, cell for cell."""
    manager.first_name = "=Evil"
    manager.save(update_fields=["first_name"])
    for n, (currency, amount) in enumerate([("JPY", 99), ("USD", 100_001), ("KWD", 7), ("EUR", 3_050)]):
        row = refund(
            f"same-{n}", currency=currency, amount_minor=amount, product=["", "-x", "Mug", "@y"][n],
            reason=["\tTab", "", "note", "+1"][n], status=RefundStatus.SUCCEEDED if n % 2 else RefundStatus.APPROVED,
            created_at=at(f"2026-0{n + 1}-15 23:59:59.999999"),
        )  # fmt: skip
        if n % 2:
            RefundRequest.objects.filter(pk=row.pk).update(
                approved_at=at(f"2026-0{n + 1}-16 01:00:00"), resolved_at=at(f"2026-0{n + 2}-01 00:00:00.5")
            )
            Approval.objects.create(refund=row, approver=manager, decision=Approval.Decision.APPROVED)
    refund("same-ext", requested_by=None, origin=RefundOrigin.EXTERNAL)
    qs = query.refunds_for_export(user=manager, filters={})

    in_database = [row for batch in query.export_rows(qs, in_database=True) for row in batch]
    in_python = [row for batch in query.export_rows(qs, in_database=False) for row in batch]

    assert len(in_database) == 5
    assert in_python == in_database


# --- filters ---------------------------------------------------------------------------------


@pytest.fixture
def filter_set(new_york):
    """Six refunds, each filter below selects a known part of them. Times in UTC; New York
    is UTC-5 in January."""
    refund("a", provider="stripe", currency="USD", status=RefundStatus.SUCCEEDED, product="Mug",
           reason_code_id="product_return", created_at=at("2026-01-10 04:59:59"))  # 9 Jan 23:59:59 in New York
    refund("b", provider="stripe", currency="USD", status=RefundStatus.FAILED, product="Mug",
           reason_code_id="goodwill", created_at=at("2026-01-10 05:00:00"))  # 10 Jan 00:00 in New York
    refund("c", provider="stripe", currency="EUR", status=RefundStatus.PENDING_APPROVAL, product="Lamp",
           created_at=at("2026-01-11 12:00:00"))
    refund("d", provider="robokassa", currency="RUB", status=RefundStatus.SUCCEEDED, product="Desk lamp",
           created_at=at("2026-01-12 12:00:00"), origin=RefundOrigin.EXTERNAL, requested_by=None)
    refund("e", provider="stripe", currency="JPY", status=RefundStatus.REJECTED, product="Chair",
           connector_refund_id="re_e", created_at=at("2026-01-13 12:00:00"))
    refund("f", provider="stripe", currency="USD", status=RefundStatus.SUCCEEDED, product="Mug",
           created_at=at("2026-01-14 12:00:00"))
    for merchant_refund_id, resolved in (("a", "2026-01-20 04:00:00"), ("d", "2026-01-21 06:00:00"), ("f", "2026-01-22 12:00:00")):
        RefundRequest.objects.filter(merchant_refund_id=merchant_refund_id).update(resolved_at=at(resolved))
    # fmt: skip


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["a", "b", "c", "d", "e", "f"]),
        ({"requested_from": "2026-01-10"}, ["b", "c", "d", "e", "f"]),
        ({"requested_to": "2026-01-10"}, ["a", "b"]),
        ({"requested_from": "2026-01-11", "requested_to": "2026-01-12"}, ["c", "d"]),
        ({"resolved_from": "2026-01-20", "resolved_to": "2026-01-21"}, ["d"]),  # a: 19 Jan 23:00 in New York
        ({"resolved_to": "2026-01-19"}, ["a"]),
        ({"status": ["succeeded"]}, ["a", "d", "f"]),
        ({"status": ["failed", "rejected"]}, ["b", "e"]),
        ({"provider": "robokassa"}, ["d"]),
        ({"currency": "USD"}, ["a", "b", "f"]),
        ({"product": "Mug"}, ["a", "b", "f"]),
        ({"reason_code": "goodwill"}, ["b"]),
        ({"origin": "external"}, ["d"]),
        ({"q": "lamp"}, ["c", "d"]),
        ({"q": "re_e"}, ["e"]),
        ({"currency": "USD", "status": ["succeeded"], "requested_from": "2026-01-10"}, ["f"]),
        ({"currency": "GBP"}, []),
    ],
)
def test_each_filter_selects_its_refunds(export, filter_set, filters, expected):
    assert exported_ids(export(**filters)) == expected


def test_filters_that_match_nothing_give_the_header_alone(export):
    job = export(currency="GBP")
    text = file_bytes(job).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("merchant_refund_id,connector_transaction_id,")
    assert len(text.splitlines()) == 1 and job.rows_written == 0


# --- formula injection ----------------------------------------------------------------------


@pytest.fixture
def hostile():
    requester = UserFactory(username="mallory", first_name="@SUM(1+1)", last_name="")
    refund(
        "=cmd|' /C calc'!A0", requested_by=requester, product="=HYPERLINK(\"http://evil\",\"x\")",
        reason="-2+3", connector_refund_id="+1", amount_minor=1999, currency="USD",
    )  # fmt: skip
    refund("safe", product="\tTabbed", reason="\rReturn", amount_minor=100, currency="USD")


def test_formula_injection_is_neutralised_in_csv_and_numbers_stay_numbers(export, hostile):
    evil, safe = csv_rows(export())

    assert evil["merchant_refund_id"] == "'=cmd|' /C calc'!A0"
    assert evil["product"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert evil["reason_note"] == "'-2+3"
    assert evil["connector_refund_id"] == "'+1"
    assert evil["requested_by"] == "'@SUM(1+1)"
    assert (safe["product"], safe["reason_note"]) == ("'\tTabbed", "'\rReturn")
    assert (evil["amount_minor"], evil["amount"]) == ("1999", "19.99")


def test_formula_injection_is_neutralised_in_xlsx_and_numbers_stay_numbers(export, hostile):
    job = export("xlsx")
    assert job.file_name.endswith(".xlsx")

    sheet = openpyxl.load_workbook(io.BytesIO(file_bytes(job)), read_only=True).active
    header, evil, safe = [list(row) for row in sheet.iter_rows()]
    cell = {name.value: value for name, value in zip(header, evil, strict=True)}

    assert cell["merchant_refund_id"].value == "'=cmd|' /C calc'!A0" and cell["merchant_refund_id"].data_type == "s"
    assert cell["product"].value == "'=HYPERLINK(\"http://evil\",\"x\")" and cell["product"].data_type == "s"
    assert cell["requested_by"].value == "'@SUM(1+1)"
    assert cell["reason_note"].value == "'-2+3"
    assert (cell["amount_minor"].value, cell["amount_minor"].data_type) == (1999, "n")
    assert (cell["amount"].value, cell["amount"].data_type, cell["amount"].number_format) == (19.99, "n", "0.00")
    assert safe[[name.value for name in header].index("product")].value == "'\tTabbed"


def test_xlsx_continues_on_a_new_sheet_past_the_row_limit(export, monkeypatch):
    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", 3)  # header + 2 rows a sheet
    for n in range(5):
        refund(f"x{n}", amount_minor=100 + n, currency="JPY", created_at=at(f"2026-02-0{n + 1} 00:00:00"))

    workbook = openpyxl.load_workbook(io.BytesIO(file_bytes(export("xlsx"))), read_only=True)

    sheets = [[row[0] for row in sheet.iter_rows(values_only=True)] for sheet in workbook.worksheets]
    assert workbook.sheetnames == ["Refunds", "Refunds 2", "Refunds 3"]
    assert sheets == [["merchant_refund_id", "x0", "x1"], ["merchant_refund_id", "x2", "x3"], ["merchant_refund_id", "x4"]]


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
