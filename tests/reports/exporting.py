"""What the export tests share: refunds as a test describes them, running a job, reading its file."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from refunds.models import ExportJob, RefundRequest
from refunds.reports.exports import jobs
from tests.factories import PaymentFactory, RefundFactory, agent

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
