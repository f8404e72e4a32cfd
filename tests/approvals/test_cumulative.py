"""The auto-approve threshold bounds what is auto-refunded on one payment in total (and, when
REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY is on, per customer per business day), not only each
refund alone: small refunds cannot add up to a whole payment without a manager."""

import pytest

from approvals.models import Approval
from approvals.services import refund_auto_approve
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.services.execution import refund_cancel
from tests import factories
from tests.factories import PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _usd_threshold(settings):
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 5000}


def file(api, user, pi, merchant_refund_id, minor_amount):
    response = api(user).post(
        "/api/refunds/",
        {
            "merchant_refund_id": merchant_refund_id,
            "connector_transaction_id": pi,
            "amount": {"minor_amount": minor_amount, "currency": "USD"},
            "reason": "Arrived broken",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_three_small_refunds_on_one_payment_are_not_all_auto_approved(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)

    statuses = [file(api, agent, pi, f"split-{i}", 4_000)["status"] for i in range(3)]

    assert statuses == ["approved", "pending_approval", "pending_approval"]
    assert Approval.objects.filter(decision=Approval.Decision.AUTO_APPROVED).count() == 1
    second = RefundRequest.objects.get(merchant_refund_id="split-1")
    note = second.logs.get(event=RefundLog.Event.NOTE)
    assert [(log.event, log.to_status) for log in second.logs.all()] == [("requested", "pending_approval"), ("note", "")]
    assert note.message == (
        "Waits for a finance manager: auto-approved refunds on this payment would reach 80.00 USD, "
        "over the 50.00 USD threshold"
    )


def test_another_agent_cannot_add_to_what_was_auto_approved_on_the_payment(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)
    colleague = factories.agent(username="colleague")

    assert file(api, agent, pi, "mine", 3_000)["status"] == "approved"
    assert file(api, colleague, pi, "theirs", 3_000)["status"] == "pending_approval"


def test_refunds_up_to_the_threshold_in_total_are_auto_approved(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)

    statuses = [file(api, agent, pi, f"fits-{i}", amount)["status"] for i, amount in enumerate([2_000, 3_000, 1])]

    assert statuses == ["approved", "approved", "pending_approval"]


def test_a_canceled_auto_approved_refund_no_longer_counts(agent, manager):
    payment = PaymentFactory(amount_minor=12_000)
    first = refund_auto_approve(refund=RefundFactory(payment=payment, requested_by=agent, amount_minor=4_000))
    assert first.status == RefundStatus.APPROVED
    refund_cancel(refund_id=first.pk, actor=manager, comment="wrong order")

    second = refund_auto_approve(refund=RefundFactory(payment=payment, requested_by=agent, amount_minor=4_000))

    assert second.status == RefundStatus.APPROVED


def test_refunds_a_manager_approved_do_not_use_up_the_auto_approval(agent, manager):
    payment = PaymentFactory(amount_minor=12_000)
    RefundFactory(payment=payment, requested_by=agent, amount_minor=8_000, status=RefundStatus.APPROVED)

    small = refund_auto_approve(refund=RefundFactory(payment=payment, requested_by=agent, amount_minor=4_000))

    assert small.status == RefundStatus.APPROVED


def test_per_customer_per_day_is_off_by_default(agent):
    one, two = PaymentFactory(customer="cus_same"), PaymentFactory(customer="cus_same")
    first = refund_auto_approve(refund=RefundFactory(payment=one, requested_by=agent, amount_minor=4_000))
    second = refund_auto_approve(refund=RefundFactory(payment=two, requested_by=agent, amount_minor=4_000))
    assert (first.status, second.status) == (RefundStatus.APPROVED, RefundStatus.APPROVED)


def test_per_customer_per_day_bounds_a_customers_payments_together(agent, settings):
    settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = True
    one, two, other = PaymentFactory(customer="cus_same"), PaymentFactory(customer="cus_same"), PaymentFactory(
        customer="cus_other"
    )
    first = refund_auto_approve(refund=RefundFactory(payment=one, requested_by=agent, amount_minor=4_000))
    second = refund_auto_approve(refund=RefundFactory(payment=two, requested_by=agent, amount_minor=4_000))
    elsewhere = refund_auto_approve(refund=RefundFactory(payment=other, requested_by=agent, amount_minor=4_000))

    assert (first.status, second.status, elsewhere.status) == (
        RefundStatus.APPROVED, RefundStatus.PENDING_APPROVAL, RefundStatus.APPROVED,
    )
    note = second.logs.get(event=RefundLog.Event.NOTE)
    assert note.message == (
        "Waits for a finance manager: auto-approved refunds for customer cus_same today would reach "
        "80.00 USD, over the 50.00 USD threshold"
    )


def test_per_customer_per_day_ignores_payments_without_a_customer(agent, settings):
    settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = True
    one, two = PaymentFactory(customer=""), PaymentFactory(customer="")
    first = refund_auto_approve(refund=RefundFactory(payment=one, requested_by=agent, amount_minor=4_000))
    second = refund_auto_approve(refund=RefundFactory(payment=two, requested_by=agent, amount_minor=4_000))
    assert (first.status, second.status) == (RefundStatus.APPROVED, RefundStatus.APPROVED)
