"""Refund exports: what the file holds (columns, decimals, time zones, approvers, filters,
formula injection). How a job runs is test_export_jobs.py."""

import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import Approval
from refunds.models import RefundOrigin, RefundRequest, RefundStatus
from refunds.reports.exports import query, writers
from tests.factories import UserFactory
from tests.reports.exporting import (  # noqa: F401 - export and new_york are fixtures
    BT,
    at,
    csv_rows,
    export,
    exported_ids,
    file_bytes,
    new_york,
    refund,
)

pytestmark = pytest.mark.django_db

ON_POSTGRESQL = connection.vendor == "postgresql"
DATABASE_PATH_IS_POSTGRESQL = (
    "the in-database export is PostgreSQL's SQL (left, chr, to_char); other databases export through the Python path"
)
# Both ways of computing the cells where the database can run them; the Python path everywhere.
EXPORT_PATHS = (True, False) if ON_POSTGRESQL else (False,)


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
        "requested_by", "approvers", "rejected_or_canceled_by", "rejection_or_cancel_reason", "failure_code",
        "failure_message", "requested_at (UTC)", "requested_at (business time: UTC)", "approved_at (UTC)",
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
        for in_database in EXPORT_PATHS:
            with CaptureQueriesContext(connection) as queries:
                rows = [row for batch in query.export_rows(qs, in_database=in_database) for row in batch]
            assert len(rows) == count
            yield len(queries)

    assert list(queries_for(2)) == list(queries_for(40))


@pytest.mark.skipif(not ON_POSTGRESQL, reason=DATABASE_PATH_IS_POSTGRESQL)
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
