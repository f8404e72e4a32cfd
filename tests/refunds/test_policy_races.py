"""Races against the approval policy and the payment's remainder, on PostgreSQL: what one
payment may auto-refund, and what it may refund at all, holds when requests arrive at once."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from approvals import policy
from approvals.models import Approval
from refunds import errors
from refunds.models import RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.base import PaymentInfo
from refunds.services import intake
from tests import factories
from tests.markers import needs_row_locks
from tests.refunds.test_concurrency import in_thread

pytestmark = pytest.mark.django_db(transaction=True)


@needs_row_locks
def test_parallel_small_refunds_never_auto_approve_beyond_the_threshold(stripe_sandbox, monkeypatch, settings):
    settings.PROVIDER_RATE_LIMITS = {}
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 5_000}
    agents = [factories.agent(username=f"agent{i}") for i in range(8)]
    pi = stripe_sandbox.create_payment(100_000)
    summed = intake.payment_refund_sums  # intake reads the payment's auto-approved sum with the others

    def slow_sum(*args, **kwargs):
        # Widen the window between reading what was auto-approved and approving, so that
        # without the payment row lock the threads would all read the same sum.
        value = summed(*args, **kwargs)
        time.sleep(0.05)
        return value

    monkeypatch.setattr(intake, "payment_refund_sums", slow_sum)

    @in_thread
    def file(i):
        return intake.refund_request_create(
            merchant_refund_id=f"small-{i}", provider="stripe", connector_transaction_id=pi,
            amount=Money(2_000, "USD"), reason="", metadata={}, product="", requested_by=agents[i],
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(file, range(8)))

    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    statuses = sorted(RefundRequest.objects.values_list("status", flat=True))
    assert statuses == [RefundStatus.APPROVED] * 2 + [RefundStatus.PENDING_APPROVAL] * 6
    assert Approval.objects.filter(decision=Approval.Decision.AUTO_APPROVED).count() == 2


@needs_row_locks
def test_parallel_intakes_for_one_customer_never_auto_approve_beyond_the_threshold(monkeypatch, settings):
    """Filed at once on different payments of one customer: intake asks the policy before the
    refund's row exists, under the payment's lock and then the customer's, and inserts it
    approved or waiting; what the customer got back automatically today stays within the threshold."""
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 5_000}
    settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = True
    agent = factories.agent(username="agent")

    def looked_up(*, connector_transaction_id, **kwargs):  # Stripe's answer: one customer's payments
        return PaymentInfo(
            connector_transaction_id=connector_transaction_id, amount=Money(10_000, "USD"), amount_refunded=0,
            status="succeeded", customer="cus_race",
        )

    monkeypatch.setattr(intake, "payment_info_fetch", looked_up)
    summed = policy._auto_approved_minor

    def slow_sum(*args, **kwargs):
        value = summed(*args, **kwargs)
        time.sleep(0.05)
        return value

    monkeypatch.setattr(policy, "_auto_approved_minor", slow_sum)

    @in_thread
    def file(i):
        return intake.refund_request_create(
            merchant_refund_id=f"customer-{i}", provider="stripe", connector_transaction_id=f"pi_customer_{i}",
            amount=Money(2_000, "USD"), reason="", metadata={}, product="", requested_by=agent,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(file, range(8)))

    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    statuses = sorted(RefundRequest.objects.values_list("status", flat=True))
    assert statuses == [RefundStatus.APPROVED] * 2 + [RefundStatus.PENDING_APPROVAL] * 6
    assert Approval.objects.filter(decision=Approval.Decision.AUTO_APPROVED).count() == 2


@needs_row_locks
def test_parallel_refunds_by_intent_and_by_charge_never_exceed_the_payment(stripe_sandbox, settings):
    settings.PROVIDER_RATE_LIMITS = {}
    agent = factories.agent(username="agent")
    pi = stripe_sandbox.create_payment(10_000)
    charge = stripe_sandbox.client().v1.payment_intents.retrieve(pi).latest_charge
    ids = [pi, charge if isinstance(charge, str) else charge.id]

    @in_thread
    def file(i):
        return intake.refund_request_create(
            merchant_refund_id=f"either-{i}", provider="stripe", connector_transaction_id=ids[i % 2],
            amount=Money(3_000, "USD"), reason="", metadata={}, product="", requested_by=agent,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(file, range(8)))

    accepted = [o for o in outcomes if isinstance(o, tuple)]
    refused = [o for o in outcomes if isinstance(o, errors.AmountExceedsRefundable)]
    assert (len(accepted), len(refused)) == (3, 5), outcomes
    assert set(RefundRequest.objects.values_list("payment__connector_transaction_id", flat=True)) == {pi}
