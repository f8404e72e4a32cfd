"""The support form in Chromium on a disputed payment: the page says the payment is disputed,
typing a refund and reviewing it shows the form error, and nothing is filed or refunded. A
finance manager sees the override field; an agent does not."""

import pytest

from refunds.models import RefundRequest
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def look_up_and_type(page, pi, amount="25.00"):
    page.goto("/refunds/new")
    page.get_by_label("Transaction id").fill(pi)
    page.get_by_role("button", name="Look up").click()
    page.get_by_test_id("payment-refundable").wait_for()
    page.get_by_label("Part of it").check()
    page.get_by_label("Amount (USD)").fill(amount)
    page.get_by_label("Reason code").select_option("product_return")
    page.get_by_label("Note").fill("Customer says it never arrived")


def test_an_agent_typing_a_refund_on_a_disputed_payment_is_told_and_nothing_is_filed(login, stripe_sandbox):
    agent = factories.agent(username="agent")
    pi = stripe_sandbox.create_payment(10_000)
    dispute = stripe_sandbox.open_dispute(pi, reason="product_not_received")
    page = login(agent, "/refunds/new")
    page.set_viewport_size({"width": 1366, "height": 900})

    look_up_and_type(page, pi)
    assert dispute["id"] in page.get_by_test_id("payment-dispute").inner_text()
    assert page.get_by_label("Why refund despite the dispute").count() == 0
    page.get_by_role("button", name="Review refund").click()

    alert = page.get_by_role("alert").filter(has_text="open dispute")
    alert.wait_for()
    text = alert.inner_text()
    assert dispute["id"] in text and "product_not_received" in text and "not filed" in text
    assert page.get_by_role("button", name="Confirm refund").count() == 0
    assert not RefundRequest.objects.exists()
    assert list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi})) == []


def test_a_finance_manager_refunds_a_disputed_payment_by_giving_a_reason(login, stripe_sandbox):
    manager = factories.manager(username="manager")
    pi = stripe_sandbox.create_payment(10_000)
    dispute = stripe_sandbox.open_dispute(pi, inquiry=True)
    page = login(manager, "/refunds/new")

    look_up_and_type(page, pi)
    page.get_by_role("button", name="Review refund").click()
    page.get_by_role("alert").filter(has_text="open dispute").wait_for()
    assert not RefundRequest.objects.exists()

    page.get_by_label("Why refund despite the dispute").fill("Settling the inquiry by refunding")
    page.get_by_role("button", name="Review refund").click()
    assert "Settling the inquiry" in page.get_by_test_id("confirm-dispute-override").inner_text()
    page.get_by_role("button", name="Confirm refund").click()
    page.wait_for_url(lambda url: "/refunds/web-" in url)

    refund = RefundRequest.objects.get()
    assert refund.dispute_overridden == dispute["id"] and refund.amount_minor == 2_500
    assert refund.logs.filter(data__code="dispute_override", actor=manager).exists()
