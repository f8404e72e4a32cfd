"""The export columns an accountant asked for: who rejected or canceled a refund and why, the
failure code and message; and an XLSX file whose dates and durations are real spreadsheet
values, with a frozen, filterable header and readable column widths."""

import datetime
import io

import openpyxl
import pytest
from django.db import connection

from approvals.models import Approval
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.reports.exports import query
from tests.factories import UserFactory
from tests.reports.exporting import at, csv_rows, export, file_bytes, refund  # noqa: F401 - export is a fixture

pytestmark = pytest.mark.django_db

ON_POSTGRESQL = connection.vendor == "postgresql"
EXPORT_PATHS = (True, False) if ON_POSTGRESQL else (False,)


@pytest.fixture
def closed_refunds(manager):
    manager.first_name, manager.last_name = "Maria", "Lopez"
    manager.save(update_fields=["first_name", "last_name"])
    agent = UserFactory(username="sam", first_name="Sam", last_name="Okafor")
    rejected = refund("rejected", status=RefundStatus.REJECTED, created_at=at("2026-03-01 10:00:00"))
    # Rejected after an earlier, lower-tier approval: the rejection is what counts.
    Approval.objects.create(refund=rejected, approver=agent, decision=Approval.Decision.APPROVED, comment="ok")
    Approval.objects.create(refund=rejected, approver=manager, decision=Approval.Decision.REJECTED,
                            comment="Outside the 30-day window")
    by_person = refund("canceled-by-agent", status=RefundStatus.CANCELED, created_at=at("2026-03-01 11:00:00"))
    RefundLog.objects.create(refund=by_person, event=RefundLog.Event.STATUS_CHANGED, from_status="approved",
                             to_status="canceled", actor=agent, message="Filed twice")
    by_provider = refund("canceled-at-stripe", status=RefundStatus.CANCELED, created_at=at("2026-03-01 12:00:00"))
    RefundLog.objects.create(refund=by_provider, event=RefundLog.Event.STATUS_CHANGED, from_status="processing",
                             to_status="canceled", message="Provider reports canceled")
    refund("failed", status=RefundStatus.FAILED, error_code="charge_for_pending_refund_disputed",
           error_message="Stripe reported the refund failed: disputed", created_at=at("2026-03-01 13:00:00"))
    refund("succeeded", status=RefundStatus.SUCCEEDED, created_at=at("2026-03-01 14:00:00"))
    return manager


def test_who_rejected_or_canceled_and_why_and_the_failure(export, closed_refunds):
    rows = {row["merchant_refund_id"]: row for row in csv_rows(export())}

    def cells(name):
        row = rows[name]
        return (row["rejected_or_canceled_by"], row["rejection_or_cancel_reason"], row["failure_code"],
                row["failure_message"])

    assert cells("rejected") == ("Maria Lopez", "Outside the 30-day window", "", "")
    assert cells("canceled-by-agent") == ("Sam Okafor", "Filed twice", "", "")
    assert cells("canceled-at-stripe") == ("stripe", "Provider reports canceled", "", "")
    assert cells("failed") == ("", "", "charge_for_pending_refund_disputed", "Stripe reported the refund failed: disputed")
    assert cells("succeeded") == ("", "", "", "")


def test_both_ways_of_computing_the_cells_agree_on_the_new_columns(closed_refunds):
    qs = query.refunds_for_export(user=closed_refunds, filters={})
    headers = query.export_headers()
    results = []
    for in_database in EXPORT_PATHS:
        rows = [row for batch in query.export_rows(qs, in_database=in_database) for row in batch]
        results.append([dict(zip(headers, row, strict=True)) for row in rows])
    assert results[0][0]["rejected_or_canceled_by"] == "Maria Lopez"
    assert all(result == results[0] for result in results)


def test_xlsx_holds_real_dates_and_durations_under_a_frozen_filterable_header(export):
    row = refund("done", status=RefundStatus.SUCCEEDED, created_at=at("2026-03-01 14:05:09"))
    RefundRequest.objects.filter(pk=row.pk).update(resolved_at=at("2026-03-09 12:00:00"))
    refund("open", created_at=at("2026-03-10 00:30:00"))

    workbook = openpyxl.load_workbook(io.BytesIO(file_bytes(export("xlsx"))))
    sheet = workbook.active
    header = [cell.value for cell in sheet[1]]
    done = {name: cell for name, cell in zip(header, sheet[2], strict=True)}

    requested = done["requested_at (UTC)"]
    assert requested.value == datetime.datetime(2026, 3, 1, 14, 5, 9) and requested.number_format == "yyyy-mm-dd hh:mm:ss"
    duration = done["time_to_resolution"]
    assert duration.number_format == "[h]:mm:ss"
    assert duration.value == datetime.timedelta(days=7, hours=21, minutes=54, seconds=51)  # sums and sorts as time
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(row=3, column=len(header)).coordinate}"
    widths = {name: sheet.column_dimensions[sheet.cell(row=1, column=i + 1).column_letter].width
              for i, name in enumerate(header)}
    assert widths["merchant_refund_id"] >= len("merchant_refund_id")
    assert widths["requested_at (UTC)"] >= len("2026-03-01 14:05:09")
    assert all(width <= 49 for width in widths.values())
