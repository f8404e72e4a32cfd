"""A support agent files a bulk refund file in Chromium: a file with a mistake is refused by line,
the corrected one is checked (dry run), confirmed, followed to the end, and its results downloaded.
A real worker does the dry run and the filing against the Stripe sandbox."""

import csv
import io

import pytest

from refunds.models import RefundRequest
from tests import factories
from tests.fixtures.browser import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEADER = "merchant_refund_id,provider,connector_transaction_id,amount,currency,reason_code,note,product"


def test_upload_dry_run_confirm_progress_download(live_worker, login, stripe_sandbox, tmp_path):
    agent = factories.agent(username="agent")
    first, second = stripe_sandbox.create_payment(10_000), stripe_sandbox.create_payment(8_000)
    page = login(agent, "/refunds/")
    page.get_by_role("link", name="Bulk refunds").click()

    broken = tmp_path / "outage-broken.csv"
    broken.write_text(f"{HEADER}\nout-1,stripe,{first},12.50,USD,,Outage,\nout-2;stripe;{second}\n")
    page.get_by_label("CSV file").set_input_files(str(broken))
    page.get_by_role("button", name="Check the file").click()
    errors = page.get_by_test_id("file-errors")
    assert "Nothing was filed: 1 problem in the file." in errors.inner_text()
    assert "Line 3: 1 values for 8 columns." in errors.inner_text()

    fixed = tmp_path / "outage.csv"
    fixed.write_text(f'{HEADER}\nout-1,stripe,{first},12.50,USD,,Outage,\nout-2,stripe,{second},,,,Outage,\n'
                     f'out-3,stripe,{first},"1,50",USD,,Outage,\n')
    page.get_by_label("CSV file").set_input_files(str(fixed))
    page.get_by_role("button", name="Check the file").click()
    page.get_by_test_id("state").filter(has_text="Checked: waiting for confirmation").wait_for(timeout=60_000)
    rows = page.get_by_role("table", name="Rows")
    assert "will be approved at once." in rows.locator("tr[data-line='2']").inner_text()
    assert "80.00 USD is over the 50.00 USD threshold" in rows.locator("tr[data-line='3']").inner_text()
    assert "“1,50” is not an amount in English" in rows.locator("tr[data-line='4']").inner_text()
    page.screenshot(path=SHOTS / "batch-1-dry-run.png", full_page=True)
    assert not RefundRequest.objects.exists()

    page.get_by_role("button", name="File this batch").click()
    page.get_by_test_id("state").filter(has_text="Done").wait_for(timeout=90_000)
    assert page.get_by_test_id("progress").inner_text() == "3 of 3 rows done"
    page.screenshot(path=SHOTS / "batch-2-done.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_test_id("download").click()
    lines = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [(r["merchant_refund_id"], r["amount"], r["dry_run"], r["outcome"]) for r in lines] == [
        ("out-1", "12.50", "auto", "filed"), ("out-2", "80.00", "approval", "filed"), ("out-3", "", "refused", "skipped"),
    ]
    assert {r.merchant_refund_id: r.status for r in RefundRequest.objects.all()}["out-2"] == "pending_approval"
