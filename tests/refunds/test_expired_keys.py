"""Money never moves twice, also after the provider forgets: Stripe keeps idempotency keys only
about a day, so a refund whose earlier create call went unanswered, sent again once its key may
have expired, looks for its refund at Stripe (by our merchant_refund_id in the refund's
metadata) before creating one. Against the Stripe sandbox over HTTP."""

from datetime import timedelta

import pytest

from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.base import TransientProviderError
from refunds.services import execution, intake

pytestmark = pytest.mark.django_db


@pytest.fixture
def lost_answer(agent, stripe_sandbox, stripe_sandbox_clean):
    """lost_answer(by=…) -> (refund, payment id): an auto-approved 20.00 USD refund whose first
    create call refunded at the sandbox and whose answer was lost (a 500 after acting)."""

    def make(*, by="payment_intent", merchant_refund_id="lost-1"):
        pi = stripe_sandbox.create_payment(10_000)
        transaction_id = pi
        if by == "charge":
            charge = stripe_sandbox.client().v1.payment_intents.retrieve(pi).latest_charge
            transaction_id = charge if isinstance(charge, str) else charge.id
        refund, _ = intake.refund_request_create(
            merchant_refund_id=merchant_refund_id, provider="stripe", connector_transaction_id=transaction_id,
            amount=Money(2_000, "USD"), reason="", metadata={}, product="", requested_by=agent,
        )
        stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)
        with pytest.raises(TransientProviderError):
            execution.refund_submit(refund_id=refund.pk)
        refund.refresh_from_db()
        assert (refund.status, refund.connector_refund_id, refund.unconfirmed_calls) == (RefundStatus.PROCESSING, "", 1)
        RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)  # the retry's time has come
        return refund, pi

    return make


def at_stripe(stripe_sandbox, pi):
    return list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}))


@pytest.mark.parametrize("by", ["payment_intent", "charge"])
def test_a_retry_after_the_key_expired_adopts_the_refund_instead_of_making_another(
    lost_answer, stripe_sandbox, settings, by
):
    settings.STRIPE_IDEMPOTENCY_KEY_TRUST_SECONDS = 0  # as if the first call was a day ago
    refund, pi = lost_answer(by=by)
    assert stripe_sandbox.expire_idempotency_keys() >= 1
    created_before = stripe_sandbox.stats()["refunds_created"]

    execution.refund_submit(refund_id=refund.pk)

    [only] = at_stripe(stripe_sandbox, pi)
    assert stripe_sandbox.stats()["refunds_created"] == created_before
    refund.refresh_from_db()
    assert (refund.connector_refund_id, refund.status, refund.unconfirmed_calls) == (
        only.id, RefundStatus.SUCCEEDED, 0,
    )
    assert refund.logs.filter(
        event=RefundLog.Event.NOTE, message=f"An earlier attempt made {only.id}; recording it, not refunding again"
    ).exists()


def test_a_person_retrying_after_a_weekend_adopts_the_refund(lost_answer, stripe_sandbox, settings, manager):
    """The attempts ran out (the answer was lost), the refund waited for a person over a
    weekend; their Retry finds the refund the first call made."""
    settings.STRIPE_IDEMPOTENCY_KEY_TRUST_SECONDS = 0
    refund, pi = lost_answer()
    execution.refund_flag_for_attention(refund_id=refund.pk, message="kept failing", code="api_error")
    stripe_sandbox.expire_idempotency_keys()

    execution.refund_retry(refund_id=refund.pk, actor=manager)
    execution.refund_submit(refund_id=refund.pk)

    [only] = at_stripe(stripe_sandbox, pi)
    refund.refresh_from_db()
    assert (refund.connector_refund_id, refund.status) == (only.id, RefundStatus.SUCCEEDED)


def test_a_retry_that_finds_nothing_at_stripe_creates_the_refund(agent, stripe_sandbox, stripe_sandbox_clean, settings):
    """The lost call never reached Stripe's create (a 500 before acting): nothing to adopt, so
    the retry creates the refund, once."""
    settings.STRIPE_IDEMPOTENCY_KEY_TRUST_SECONDS = 0
    pi = stripe_sandbox.create_payment(10_000)
    refund, _ = intake.refund_request_create(
        merchant_refund_id="never-made", provider="stripe", connector_transaction_id=pi,
        amount=Money(2_000, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"])
    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    stripe_sandbox.expire_idempotency_keys()
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)

    execution.refund_submit(refund_id=refund.pk)

    [only] = at_stripe(stripe_sandbox, pi)
    refund.refresh_from_db()
    assert (refund.connector_refund_id, refund.status) == (only.id, RefundStatus.SUCCEEDED)


def test_while_the_key_is_trusted_the_retry_relies_on_it(lost_answer, stripe_sandbox, settings):
    """A retry soon after the lost answer is replayed by the key, without a lookup first."""
    settings.STRIPE_IDEMPOTENCY_KEY_TRUST_SECONDS = int(timedelta(hours=20).total_seconds())
    refund, pi = lost_answer()
    stripe_sandbox.reset_stats()

    execution.refund_submit(refund_id=refund.pk)

    stats = stripe_sandbox.stats()
    [only] = at_stripe(stripe_sandbox, pi)
    assert stats["idempotent_replays"] == 1 and "GET /v1/refunds" not in stats["requests"]
    refund.refresh_from_db()
    assert refund.connector_refund_id == only.id
