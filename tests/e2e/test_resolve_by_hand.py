"""A finance manager closes a refund the system could not finish, in headless Chromium: from
the refund's page to "Resolve by hand", a wrong choice first, then the refund id they found at
Stripe. What is recorded is the refund at the Stripe sandbox, and Stripe holds exactly one."""

import pytest

from refunds.models import RefundRequest, RefundStatus
from refunds.money import Money
from refunds.services import intake
from refunds.services.transitions import refund_flag_for_attention
from tests import factories
from tests.fixtures.browser import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_manager_records_the_refund_found_at_stripe(login, stripe_sandbox):
    agent = factories.agent(username="agent")
    manager = factories.manager(username="manager")
    pi = stripe_sandbox.create_payment(10_000)
    refund, _ = intake.refund_request_create(
        merchant_refund_id="lost-answer-1", provider="stripe", connector_transaction_id=pi,
        amount=Money(2500, "USD"), reason="", metadata={}, product="Mug", requested_by=agent,
    )
    refund_flag_for_attention(refund_id=refund.pk, message="No answer heard from Stripe", code="unknown_outcome")
    made = stripe_sandbox.client().v1.refunds.create(
        params={"payment_intent": pi, "amount": 2500, "metadata": {"merchant_refund_id": "lost-answer-1"}}
    )

    page = login(manager, f"/admin/refunds/refundrequest/{refund.pk}/change/")
    page.get_by_test_id("resolve-link").click()
    assert "No answer heard from Stripe" in page.get_by_test_id("attention-reason").inner_text()
    # The wrong radio button: "made no refund", with the id typed.
    page.get_by_label("The provider made no refund: fail it").check()
    page.get_by_label("The provider's refund id").fill(made.id)
    page.get_by_label("How you checked (required)").fill("Found it in the Stripe dashboard")
    page.get_by_test_id("resolve-submit").click()
    assert "choose the first option" in page.get_by_test_id("error-connector_refund_id").inner_text()
    assert RefundRequest.objects.get(pk=refund.pk).status == RefundStatus.NEEDS_ATTENTION
    page.screenshot(path=SHOTS / "resolve-by-hand-error.png", full_page=True)

    page.get_by_label("The provider made the refund: record its refund id").check()
    page.get_by_test_id("resolve-submit").click()
    page.locator("ul.messagelist").wait_for()

    refund.refresh_from_db()
    assert refund.connector_refund_id == made.id
    assert refund.status in (RefundStatus.SUCCEEDED, RefundStatus.PROCESSING)
    assert "Found it in the Stripe dashboard" in page.content()  # the timeline on the refund's page
    page.screenshot(path=SHOTS / "resolve-by-hand-done.png", full_page=True)
    assert [r.id for r in stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data] == [made.id]
