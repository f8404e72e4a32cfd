"""The payment's "refunded at provider" figure, as the admin shows it, stays what Stripe says
after our refunds finish, not only after someone files another refund on the payment."""

import pytest
from django.urls import reverse

from refunds.models import Payment, RefundStatus
from refunds.money import Money
from refunds.services import execution, intake

pytestmark = pytest.mark.django_db


@pytest.fixture
def file_on(agent):
    def make(pi, amount, n):
        refund, _ = intake.refund_request_create(
            merchant_refund_id=f"paid-{pi}-{n}", provider="stripe", connector_transaction_id=pi,
            amount=Money(amount, "USD"), reason="", metadata={}, product="Mug", requested_by=agent,
        )
        return refund

    return make


def stripe_refunded(stripe_sandbox, pi):
    return stripe_sandbox.client().v1.payment_intents.retrieve(pi, params={"expand": ["latest_charge"]}).latest_charge.amount_refunded


def test_each_succeeded_refund_counts_once(file_on, stripe_sandbox, manager, client):
    pi = stripe_sandbox.create_payment(10_000)
    for n, amount in enumerate((2000, 1500)):
        execution.refund_submit(refund_id=file_on(pi, amount, n).pk)

    payment = Payment.objects.get(connector_transaction_id=pi)
    assert payment.amount_refunded_minor == 3500 == stripe_refunded(stripe_sandbox, pi)
    client.force_login(manager)
    page = client.get(reverse("admin:refunds_payment_changelist")).content.decode()
    assert "35.00 USD" in page


def test_a_refund_already_in_the_providers_figure_is_not_added_again(file_on, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000, behavior="stay_pending")
    first = file_on(pi, 2000, 0)
    execution.refund_submit(refund_id=first.pk)  # at Stripe, pending: Stripe's figure holds it already
    file_on(pi, 1000, 1)  # filing reads the payment again from Stripe: 20.00 refunded
    first.refresh_from_db()
    stripe_sandbox.settle(first.connector_refund_id, "succeeded")

    execution.refund_sync_status(refund_id=first.pk)

    first.refresh_from_db()
    assert first.status == RefundStatus.SUCCEEDED
    assert Payment.objects.get(connector_transaction_id=pi).amount_refunded_minor == 2000 == stripe_refunded(stripe_sandbox, pi)
