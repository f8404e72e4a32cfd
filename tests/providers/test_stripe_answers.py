"""The Stripe adapter reads Stripe's answers as the JSON the SDK parsed (StripeProvider._call),
not as the SDK's typed objects: what it reads must be what those objects say, every page of a
list must be walked, and the idempotency key must still reach Stripe."""

import uuid

import pytest

from refunds.providers import get_provider
from refunds.providers.base import Money, ProviderRefundStatus

pytestmark = pytest.mark.django_db


def _refund(adapter, payment: str, minor: int, merchant_refund_id: str, key: str | None = None):
    return adapter.create_refund(
        merchant_refund_id=merchant_refund_id, connector_transaction_id=payment, amount=Money(minor, "USD"),
        reason="requested_by_customer", metadata={"ticket": "T-1"}, idempotency_key=key or uuid.uuid4().hex,
    )


def test_what_the_adapter_reads_is_what_the_sdks_objects_say(stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(9_000, metadata={"product": "Plan B"}, customer=stripe_sandbox.create_customer())
    adapter = get_provider("stripe")
    made = _refund(adapter, pi, 1_250, "mr-answers-1")
    stripe_sandbox.open_dispute(pi, amount=3_000, reason="fraudulent")

    sdk = stripe_sandbox.client()
    intent = sdk.v1.payment_intents.retrieve(pi, params={"expand": ["latest_charge"]})
    charge = intent.latest_charge
    refund = sdk.v1.refunds.retrieve(made.connector_refund_id)
    [dispute] = sdk.v1.disputes.list(params={"charge": charge.id}).data

    payment = adapter.get_payment(connector_transaction_id=pi)
    assert (payment.connector_transaction_id, payment.aliases) == (pi, (charge.id,))
    assert payment.amount == Money(charge.amount, charge.currency.upper()) == Money(9_000, "USD")
    assert payment.amount_refunded == charge.amount_refunded == 1_250
    assert (payment.status, payment.customer) == (intent.status, intent.customer)
    assert payment.customer.startswith("cus_")
    assert payment.metadata == intent.metadata.to_dict() and payment.product == "Plan B"
    assert payment.dispute is not None and payment.dispute.is_open
    assert (payment.dispute.dispute_id, payment.dispute.provider_status, payment.dispute.reason) == (
        dispute.id, dispute.status, "fraudulent"
    )
    assert payment.dispute.amount == Money(dispute.amount, dispute.currency.upper()) == Money(3_000, "USD")

    asked = adapter.get_refund(connector_refund_id=made.connector_refund_id)
    assert asked == made
    assert (asked.connector_refund_id, asked.amount, asked.connector_transaction_id) == (
        refund.id, Money(refund.amount, refund.currency.upper()), refund.payment_intent
    )
    assert asked.merchant_refund_id == refund.metadata["merchant_refund_id"] == "mr-answers-1"
    assert asked.status in (ProviderRefundStatus.PENDING, ProviderRefundStatus.SUCCEEDED)

    by_charge = adapter.get_payment(connector_transaction_id=charge.id)
    assert (by_charge.connector_transaction_id, by_charge.aliases, by_charge.amount_refunded) == (pi, (charge.id,), 1_250)


def test_a_payments_refunds_are_read_past_the_first_page(stripe_sandbox, stripe_sandbox_clean):
    """Stripe lists 100 at most a page, newest first: the first refund made is on the second page."""
    pi = stripe_sandbox.create_payment(50_000)
    adapter = get_provider("stripe")
    made = [_refund(adapter, pi, 10 + n, f"mr-page-{n}") for n in range(103)]

    listed = adapter.list_refunds(connector_transaction_id=pi)

    assert sorted(r.connector_refund_id for r in listed) == sorted(r.connector_refund_id for r in made)
    assert len({r.connector_refund_id for r in listed}) == 103
    first = adapter.find_refund(merchant_refund_id="mr-page-0", connector_transaction_id=pi)
    assert first is not None and first.connector_refund_id == made[0].connector_refund_id
    assert first.amount == Money(10, "USD")


def test_the_idempotency_key_still_reaches_stripe(stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(6_000)
    adapter = get_provider("stripe")
    key = uuid.uuid4().hex

    once = _refund(adapter, pi, 2_000, "mr-key", key=key)
    again = _refund(adapter, pi, 2_000, "mr-key", key=key)

    assert again.connector_refund_id == once.connector_refund_id
    assert [r.connector_refund_id for r in adapter.list_refunds(connector_transaction_id=pi)] == [once.connector_refund_id]
    assert adapter.get_payment(connector_transaction_id=pi).amount_refunded == 2_000
