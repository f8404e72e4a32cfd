"""A support agent files a Robokassa refund by invoice items in headless Chromium: the rows work
without JavaScript ("Add a row" is a plain submit) and a wrong total is a clear error."""

import re

import pytest

from refunds.models import RefundRequest
from tests import factories
from tests.fixtures.browser import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_agent_files_a_robokassa_refund_by_items(login, robokassa_sandbox):
    agent = factories.agent(username="agent")
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="stay", description="Tea set")
    page = login(agent, "/refunds/new")

    page.get_by_label("Provider").select_option("robokassa")
    page.get_by_label("Transaction id").fill(invoice_id)
    page.get_by_role("button", name="Look up").click()
    page.get_by_test_id("payment-refundable").wait_for()
    page.get_by_label("Part of it").check()
    page.get_by_label("Amount (RUB)").fill("20.00")
    page.get_by_label("Reason code").select_option("product_return")
    page.get_by_label("Note").fill("Teapot and two cups arrived broken")
    for row, (name, quantity, cost, tax) in enumerate((("Teapot", "1", "15.00", "vat20"), ("Cup", "2", "6.00", "none")), 1):
        page.get_by_label(f"Item, row {row}").fill(name)
        page.get_by_label(f"Quantity, row {row}").fill(quantity)
        page.get_by_label(f"Price each (RUB), row {row}").fill(cost)
        page.get_by_label(f"Tax, row {row}").select_option(tax)
    page.get_by_role("button", name="Add a row").click()
    page.get_by_label("Item, row 4").wait_for()
    assert page.get_by_label("Item, row 2").input_value() == "Cup"

    page.get_by_role("button", name="Review refund").click()
    error = page.get_by_test_id("items-errors")
    assert "The items add up to 27.00 RUB, not the amount (20.00 RUB)" in error.inner_text()
    page.screenshot(path=SHOTS / "robokassa-items-error.png", full_page=True)
    assert not RefundRequest.objects.exists()

    page.get_by_label("Amount (RUB)").fill("27.00")
    page.get_by_role("button", name="Review refund").click()
    assert "Refund 27.00 RUB of 100.00 RUB" in page.get_by_test_id("confirm-summary").inner_text()
    assert not RefundRequest.objects.exists()  # nothing is filed before Confirm
    page.get_by_role("button", name="Confirm refund").click()
    page.wait_for_url(re.compile(r"/refunds/web-"))
    refund = RefundRequest.objects.get()
    assert (refund.amount_minor, [item["name"] for item in refund.items]) == (2_700, ["Teapot", "Cup"])
    page.screenshot(path=SHOTS / "robokassa-items-filed.png", full_page=True)
