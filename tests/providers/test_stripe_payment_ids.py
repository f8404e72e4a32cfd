"""Stripe names one payment by its PaymentIntent and by its Charge: the adapter answers with
the PaymentIntent as the payment's id and the charge as its alias, whichever was asked."""

import pytest

from refunds.providers import get_provider

pytestmark = pytest.mark.django_db


def test_a_payment_asked_by_either_id_is_named_by_its_payment_intent(stripe_sandbox):
    pi = stripe_sandbox.create_payment(8_000)
    charge = stripe_sandbox.client().v1.payment_intents.retrieve(pi).latest_charge
    ch = charge if isinstance(charge, str) else charge.id
    adapter = get_provider("stripe")

    by_intent = adapter.get_payment(connector_transaction_id=pi)
    by_charge = adapter.get_payment(connector_transaction_id=ch)

    assert (by_intent.connector_transaction_id, by_intent.aliases) == (pi, (ch,))
    assert (by_charge.connector_transaction_id, by_charge.aliases) == (pi, (ch,))
    assert by_charge.amount == by_intent.amount and by_charge.refundable == by_intent.refundable == 8_000
