"""An accountant in headless Chromium: picks a day on the summary page, imports sales from a
CSV file (first with mistakes), and sees the refund rate by product use them. Screenshots
land in test-artifacts/screenshots/."""

import datetime
import re

import pytest

from refunds.models import RefundRequest, RefundStatus, Sale
from tests import factories
from tests.fixtures.browser import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
UTC = datetime.UTC


def seed_day():
    """10 March 2026 in New York: three refunds of 'Desk lamp', one of them succeeded."""
    created = datetime.datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    for status, amount, resolved in (
        (RefundStatus.SUCCEEDED, 3000, datetime.timedelta(hours=2)),
        (RefundStatus.REJECTED, 1500, datetime.timedelta(hours=1)),
        (RefundStatus.PENDING_APPROVAL, 500, None),
    ):
        row = factories.RefundFactory(status=status, amount_minor=amount, product="Desk lamp")
        RefundRequest.objects.filter(pk=row.pk).update(
            created_at=created, resolved_at=created + resolved if resolved else None
        )


def test_accountant_reads_a_day_and_imports_the_sales_behind_its_rates(login, settings, tmp_path):
    settings.REPORTS_TIME_ZONE = "America/New_York"
    accountant = factories.accountant(username="acc-browser")
    seed_day()
    page = login(accountant, next_url="/reports/summary/")

    page.get_by_label("From").fill("2026-03-10")
    page.get_by_label("To (inclusive)").fill("2026-03-10")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"start=2026-03-10"))
    assert page.get_by_test_id("summary-range").inner_text() == "Tuesday 10 March 2026"
    assert page.get_by_test_id("requested-count").inner_text() == "3"
    assert page.get_by_test_id("approval-rate").inner_text().startswith("0.0%")
    totals = page.get_by_test_id("total-USD").inner_text()
    assert "3" in totals and "50.00 USD" in totals
    rates = page.get_by_role("table", name="Refund rate by product")
    assert "No sales known" in rates.inner_text()

    # A mistaken file: nothing imported, the line and the reason shown.
    bad = tmp_path / "lamps-bad.csv"
    bad.write_text("sale_id,sold_at,product,amount,currency\nL-1,2026-03-10,Desk lamp,60.00,USD\nL-2,2026-03-10,Desk lamp,sixty,USD\n")
    page.goto("/reports/sales/import")
    page.get_by_label("CSV file").set_input_files(str(bad))
    page.get_by_role("button", name="Import").click()
    errors = page.get_by_test_id("import-errors")
    assert "Nothing was imported: 1 problem in the file." in errors.inner_text()
    assert "Line 3: amount 'sixty' is not a number." in errors.inner_text()
    page.screenshot(path=SHOTS / "reports-sales-import-errors.png", full_page=True)
    assert not Sale.objects.exists()

    good = tmp_path / "lamps.csv"
    good.write_text("sale_id,sold_at,product,amount,currency\nL-1,2026-03-10,Desk lamp,60.00,USD\nL-2,2026-03-10T18:00:00,Desk lamp,60.00,USD\n")
    page.get_by_label("CSV file").set_input_files(str(good))
    page.get_by_role("button", name="Import").click()
    page.wait_for_url(re.compile(r"/reports/sales/\?source=import"))
    assert "Imported lamps.csv: 2 new sales, 0 updated." in page.get_by_role("status").inner_text()
    sales_table = page.get_by_role("table", name="Sales")
    assert sales_table.get_by_role("row").count() == 3  # header + 2
    # Shown as imported: in the business zone.
    assert "2026-03-10 18:00" in sales_table.inner_text() and "2026-03-10 00:00" in sales_table.inner_text()
    page.screenshot(path=SHOTS / "reports-sales.png", full_page=True)

    page.goto("/reports/summary/?start=2026-03-10&end=2026-03-10")
    row = page.get_by_role("table", name="Refund rate by product").get_by_role("row", name=re.compile("Desk lamp"))
    text = row.inner_text()
    assert "30.00 USD" in text and "120.00 USD" in text and "25.0%" in text and "CSV import" in text
    page.screenshot(path=SHOTS / "reports-summary.png", full_page=True)

    page.get_by_label("To (inclusive)").fill("2026-03-01")
    page.get_by_role("button", name="Show").click()
    assert "The end date is before the start date." in page.get_by_role("alert").inner_text()
