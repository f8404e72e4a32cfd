"""An accountant exports refunds in headless Chromium: a form mistake, the progress page that
reloads itself until the file is ready, the download; and the admin list's Export button.
Screenshots land in test-artifacts/screenshots/."""

import csv
import io
import re

import pytest

from refunds.models import ExportJob, RefundStatus
from refunds.reports.exports import jobs as export_jobs
from tests import factories
from tests.fixtures.browser import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def seed():
    filer = factories.agent(username="filer-browser")
    for n, (currency, amount, status) in enumerate(
        [("JPY", 1500, RefundStatus.SUCCEEDED), ("KWD", 1234, RefundStatus.SUCCEEDED), ("USD", 999, RefundStatus.FAILED)]
    ):
        factories.RefundFactory(
            merchant_refund_id=f"web-{n}", currency=currency, amount_minor=amount, status=status,
            payment=factories.PaymentFactory(currency=currency), requested_by=filer, product="Blue mug",
        )  # fmt: skip


def test_accountant_exports_follows_progress_and_downloads(login, tmp_path):
    accountant = factories.accountant(username="acc-export")
    seed()
    page = login(accountant, next_url="/reports/exports/")

    page.get_by_label("Requested from").fill("2026-03-10")
    page.get_by_label("Requested to (inclusive)").fill("2026-03-01")
    page.get_by_role("button", name="Export", exact=True).click()
    assert "The end date is before the start date." in page.locator(".errorlist").inner_text()
    page.screenshot(path=SHOTS / "exports-form-error.png", full_page=True)
    assert not ExportJob.objects.exists()

    page.get_by_label("Requested from").fill("")
    page.get_by_label("Requested to (inclusive)").fill("")
    page.get_by_label("Succeeded").check()
    page.get_by_role("button", name="Export", exact=True).click()
    page.wait_for_url(re.compile(r"/reports/exports/\d+/$"))
    assert page.get_by_test_id("state").inner_text() == "Queued"
    page.screenshot(path=SHOTS / "exports-queued.png", full_page=True)

    job = ExportJob.objects.get()
    export_jobs.export_job_run(job_id=job.pk)  # as the worker would; the page notices by itself

    link = page.get_by_test_id("download")
    link.wait_for()
    assert page.get_by_test_id("state").inner_text() == "Ready"
    page.screenshot(path=SHOTS / "exports-ready.png", full_page=True)
    with page.expect_download() as download:
        link.click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert [(r["merchant_refund_id"], r["amount"], r["currency"]) for r in rows] == [
        ("web-0", "1500", "JPY"),
        ("web-1", "1.234", "KWD"),
    ]
    page.goto("/reports/exports/")
    page.screenshot(path=SHOTS / "exports-list.png", full_page=True)


def test_the_admin_refund_list_exports_what_it_shows(login):
    accountant = factories.accountant(username="acc-admin-export")
    seed()
    page = login(accountant, next_url="/admin/refunds/refundrequest/?currency=JPY")

    page.get_by_role("link", name="Export CSV").click()
    page.wait_for_url(re.compile(r"/reports/exports/\?"))
    assert page.get_by_label("Currency").input_value() == "JPY"
    assert page.get_by_label("CSV", exact=True).is_checked()
    page.screenshot(path=SHOTS / "exports-from-admin.png", full_page=True)
    page.get_by_role("button", name="Export", exact=True).click()
    page.wait_for_url(re.compile(r"/reports/exports/\d+/$"))

    assert ExportJob.objects.get().filters == {"currency": "JPY"}
