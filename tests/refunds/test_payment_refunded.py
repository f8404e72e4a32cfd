"""The payment's "refunded at provider" figure, as the admin shows it, stays what Stripe says
after our refunds finish, not only after someone files another refund on the payment."""

import pytest
from django.urls import reverse
from django.utils import timezone

from refunds.models import Payment, RefundStatus
from refunds.money import Money
from refunds.services import execution, intake, payments
from tests.factories import RefundFactory

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


def test_a_refund_counts_on_its_own_payment_only(file_on, stripe_sandbox):
    other = stripe_sandbox.create_payment(10_000)
    file_on(other, 1000, 0)  # its row, read from Stripe before the refund below is sent
    pi = stripe_sandbox.create_payment(10_000)

    execution.refund_submit(refund_id=file_on(pi, 2000, 0).pk)

    assert Payment.objects.get(connector_transaction_id=pi).amount_refunded_minor == 2000
    assert Payment.objects.get(connector_transaction_id=other).amount_refunded_minor == 0


def test_a_payment_whose_amount_is_not_known_keeps_its_figure(db):
    """A payment filed while its provider could not be asked has no amount yet: nothing caps the
    figure, so it is left for the next read from the provider to set."""
    payment = Payment.objects.create(provider="stripe", connector_transaction_id="pi_amount_unknown")
    refund = RefundFactory(payment=payment, amount_minor=2000, status=RefundStatus.SUCCEEDED, submitted_at=timezone.now())

    payments.payment_count_refund_succeeded(refund=refund)

    payment.refresh_from_db()
    assert (payment.amount_minor, payment.amount_refunded_minor) == (None, 0)
