"""One payment whatever id names it: a Stripe payment filed by its PaymentIntent (pi_…) and by
its Charge (ch_…) is one Payment row, so the refundable check and the row lock hold across
both (against the Stripe sandbox over HTTP)."""

import pytest

from refunds.models import Payment, PaymentAlias, RefundRequest
from refunds.providers.base import Money, PaymentInfo
from refunds.services.payments import payment_lock_and_refresh, payment_preview
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db


def charge_of(stripe_sandbox, pi: str) -> str:
    charge = stripe_sandbox.client().v1.payment_intents.retrieve(pi).latest_charge
    return charge if isinstance(charge, str) else charge.id


def file(client, transaction_id, merchant_refund_id, minor_amount):
    return client.post(
        "/api/refunds/",
        {
            "merchant_refund_id": merchant_refund_id,
            "connector_transaction_id": transaction_id,
            "amount": {"minor_amount": minor_amount, "currency": "USD"},
        },
        format="json",
    )


@pytest.mark.parametrize("first_by", ["charge", "payment_intent"])
def test_an_over_refund_across_both_ids_is_refused_at_intake(api, agent, stripe_sandbox, first_by):
    pi = stripe_sandbox.create_payment(8_000)
    ch = charge_of(stripe_sandbox, pi)
    first_id, second_id = (ch, pi) if first_by == "charge" else (pi, ch)
    client = api(agent)

    first = file(client, first_id, "by-first", 6_000)
    second = file(client, second_id, "by-second", 6_000)

    assert first.status_code == 201, first.json()
    assert second.status_code == 422, second.json()
    assert second.json()["error"]["code"] == "amount_exceeds_refundable"
    assert "exceeds what remains refundable on the payment (20.00 USD)" in second.json()["error"]["message"]
    [payment] = Payment.objects.all()
    assert payment.connector_transaction_id == pi
    assert list(payment.aliases.values_list("connector_transaction_id", flat=True)) == [ch]
    refund = RefundRequest.objects.get()
    assert (refund.payment, refund.connector_transaction_id) == (payment, first_id)


def test_what_fits_is_filed_on_the_one_payment_by_either_id(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(8_000)
    ch = charge_of(stripe_sandbox, pi)
    client = api(agent)

    assert file(client, ch, "by-charge", 3_000).status_code == 201
    assert file(client, pi, "by-intent", 5_000).status_code == 201
    assert file(client, ch, "one-more", 1).status_code == 422

    assert {r.payment.connector_transaction_id for r in RefundRequest.objects.all()} == {pi}


def test_the_preview_counts_refunds_filed_by_the_other_id(agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(8_000)
    ch = charge_of(stripe_sandbox, pi)
    payment = Payment.objects.create(provider="stripe", connector_transaction_id=pi, amount_minor=8_000, currency="USD")
    PaymentAlias.objects.create(payment=payment, provider="stripe", connector_transaction_id=ch)
    RefundFactory(payment=payment, connector_transaction_id=pi, amount_minor=6_000)

    preview = payment_preview(provider="stripe", connector_transaction_id=ch)

    assert (preview.awaiting, preview.refundable_now) == (6_000, 2_000)


def test_a_payment_first_filed_unverified_by_its_charge_joins_the_payment_when_verified(agent):
    """Filed while Stripe was unreachable (no answer, so no way to know the charge's payment):
    the row made for the charge id is folded into the PaymentIntent's once Stripe answers."""
    stray = payment_lock_and_refresh(provider="stripe", connector_transaction_id="ch_stray", info=None)
    assert stray.connector_transaction_id == "ch_stray"
    earlier = RefundFactory(payment=stray, connector_transaction_id="ch_stray", amount_minor=6_000, payment_verified=False)
    info = PaymentInfo(
        connector_transaction_id="pi_known", amount=Money(8_000, "USD"), amount_refunded=0, status="succeeded",
        aliases=("ch_stray",),
    )

    payment = payment_lock_and_refresh(provider="stripe", connector_transaction_id="pi_known", info=info)

    earlier.refresh_from_db()
    assert earlier.payment == payment and payment.connector_transaction_id == "pi_known"
    assert payment_lock_and_refresh(provider="stripe", connector_transaction_id="ch_stray", info=None) == payment


def test_only_the_provider_s_own_rows_are_folded_into_its_payment(agent):
    """Prism's Stripe connector names charges alike (ch_…): its row for the same charge id is
    another provider's payment, and its refunds stay with it when Stripe's payment is refreshed."""
    through_prism = payment_lock_and_refresh(provider="prism_stripe", connector_transaction_id="ch_both", info=None)
    theirs = RefundFactory(payment=through_prism, connector_transaction_id="ch_both", amount_minor=6_000)
    info = PaymentInfo(
        connector_transaction_id="pi_direct", amount=Money(8_000, "USD"), amount_refunded=0, status="succeeded",
        aliases=("ch_both",),
    )

    payment = payment_lock_and_refresh(provider="stripe", connector_transaction_id="pi_direct", info=info)

    theirs.refresh_from_db()
    assert theirs.payment == through_prism != payment
    assert payment_lock_and_refresh(provider="prism_stripe", connector_transaction_id="ch_both", info=None) == through_prism


def test_rows_filed_under_both_ids_before_aliases_existed_become_one_on_the_next_intake(api, agent, stripe_sandbox):
    """Before migration 0011 each id had its own row; the next intake folds them together, so
    the refunds filed under the charge count against what remains."""
    pi = stripe_sandbox.create_payment(8_000)
    ch = charge_of(stripe_sandbox, pi)
    old_intent_row = Payment.objects.create(provider="stripe", connector_transaction_id=pi, amount_minor=8_000, currency="USD")
    old_charge_row = Payment.objects.create(provider="stripe", connector_transaction_id=ch, amount_minor=8_000, currency="USD")
    by_charge = RefundFactory(payment=old_charge_row, connector_transaction_id=ch, amount_minor=6_000)

    response = file(api(agent), pi, "after-upgrade", 6_000)

    assert response.status_code == 422, response.json()
    assert response.json()["error"]["code"] == "amount_exceeds_refundable"
    assert file(api(agent), pi, "what-remains", 2_000).status_code == 201
    by_charge.refresh_from_db()
    assert by_charge.payment == old_intent_row
    assert PaymentAlias.objects.get(connector_transaction_id=ch).payment == old_intent_row


def test_the_preview_by_charge_counts_a_row_made_before_aliases_existed(agent, stripe_sandbox):
    """A row made under the PaymentIntent before migration 0011 has no alias for its charge yet:
    the preview asks Stripe which payment the charge belongs to and counts that row's refunds."""
    pi = stripe_sandbox.create_payment(8_000)
    ch = charge_of(stripe_sandbox, pi)
    payment = Payment.objects.create(provider="stripe", connector_transaction_id=pi, amount_minor=8_000, currency="USD")
    RefundFactory(payment=payment, connector_transaction_id=pi, amount_minor=6_000)

    preview = payment_preview(provider="stripe", connector_transaction_id=ch)

    assert (preview.connector_transaction_id, preview.awaiting, preview.refundable_now) == (ch, 6_000, 2_000)
    assert not PaymentAlias.objects.exists()  # a preview writes nothing


def test_the_provider_s_answer_is_stored_cut_to_the_columns_and_a_dispute_with_its_dates():
    """What Stripe says of a payment lands on its row: over-long names cut to their columns
    (PostgreSQL would refuse the row), the dispute with when it was opened; a payment the
    provider reports undisputed has no dispute on its row."""
    import dataclasses
    from datetime import datetime, timezone as tz

    from refunds.providers.base import DisputeInfo, DisputeState

    opened = datetime(2026, 11, 30, 9, 15, tzinfo=tz.utc)
    dispute = DisputeInfo(
        dispute_id="dp_" + "9" * 297, state=DisputeState.OPEN, provider_status="s" * 40, amount=Money(8_000, "USD"),
        reason="r" * 70, opened_at=opened,
    )
    info = PaymentInfo(
        connector_transaction_id="pi_long", amount=Money(8_000, "USD"), amount_refunded=0, status="succeeded",
        product="p" * 250, customer="c" * 300, disputes_known=True, dispute=dispute,
    )

    payment = payment_lock_and_refresh(provider="stripe", connector_transaction_id="pi_long", info=info)

    payment.refresh_from_db()
    assert (payment.product, payment.customer) == ("p" * 200, "c" * 255)
    assert (payment.dispute_id, payment.dispute_state, payment.dispute_status, payment.dispute_reason) == (
        dispute.dispute_id[:255], "open", "s" * 32, "r" * 64,
    )
    assert (payment.dispute_amount_minor, payment.dispute_opened_at) == (8_000, opened)

    undisputed = payment_lock_and_refresh(
        provider="stripe", connector_transaction_id="pi_long", info=dataclasses.replace(info, dispute=None)
    )
    undisputed.refresh_from_db()
    assert (undisputed.dispute_id, undisputed.dispute_state, undisputed.dispute_status, undisputed.dispute_reason,
            undisputed.dispute_amount_minor, undisputed.dispute_opened_at) == ("", "", "", "", None, None)
