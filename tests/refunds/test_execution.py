"""Executing approved refunds at the Stripe sandbox and following them to a final state.

These call the services the worker calls, in-process, so each fault can be set up exactly;
tests/integration runs the same path through a real worker."""

from datetime import timedelta

import pytest
from django.utils import timezone

from refunds.services import execution, intake
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.base import RefundResult, ProviderRefundStatus, TransientProviderError

pytestmark = pytest.mark.django_db


@pytest.fixture
def file_refund(agent, stripe_sandbox):
    """file_refund(amount, payment_amount=10_000, behavior=None) -> an approved refund (auto-approved)."""

    def make(amount=2000, *, payment_amount=10_000, behavior=None, merchant_refund_id=None):
        pi = stripe_sandbox.create_payment(payment_amount, behavior=behavior)
        refund, _ = intake.refund_request_create(
            merchant_refund_id=merchant_refund_id or f"ex-{pi}",
            provider="stripe",
            connector_transaction_id=pi,
            amount=Money(amount, "USD"),
            reason="requested_by_customer",
            metadata={"ticket": "T-1"},
            product="Mug",
            requested_by=agent,
        )
        return refund

    return make


def provider_refunds(stripe_sandbox, refund):
    return list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": refund.connector_transaction_id}))


def test_submit_refunds_once_at_stripe_and_records_success(file_refund, stripe_sandbox):
    refund = file_refund(2000)

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.connector_refund_id.startswith("re_") and refund.resolved_at
    [at_stripe] = provider_refunds(stripe_sandbox, refund)
    assert (at_stripe.id, at_stripe.amount, at_stripe.metadata["merchant_refund_id"]) == (
        refund.connector_refund_id,
        2000,
        refund.merchant_refund_id,
    )
    assert [e for e in refund.logs.values_list("event", flat=True)] == [
        "requested", "status_changed", "status_changed", "provider_call", "provider_answer", "status_changed",
    ]


def test_submitting_again_never_refunds_twice(file_refund, stripe_sandbox):
    refund = file_refund(2000)

    for _ in range(5):
        execution.refund_submit(refund_id=refund.pk)

    assert len(provider_refunds(stripe_sandbox, refund)) == 1


def test_lost_response_is_recovered_by_the_idempotency_key(file_refund, stripe_sandbox, stripe_sandbox_clean):
    """The provider refunded but its answer never arrived; the retry gets the same refund."""
    refund = file_refund(2000)
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)

    with pytest.raises(TransientProviderError) as raised:
        execution.refund_submit(refund_id=refund.pk)
    assert raised.value.retry_in > 0
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING and not refund.connector_refund_id
    assert len(provider_refunds(stripe_sandbox, refund)) == 1

    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)  # the retry's time has come
    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    [only] = provider_refunds(stripe_sandbox, refund)
    assert only.id == refund.connector_refund_id


def test_a_call_in_flight_keeps_a_second_worker_out(file_refund, stripe_sandbox, settings):
    """A duplicate task while another worker is mid-call (its lease fresh) does not call;
    once the lease has run out (that worker died), it does, with the same key."""
    refund = file_refund(2000)
    now = timezone.now()
    RefundRequest.objects.filter(pk=refund.pk).update(status=RefundStatus.PROCESSING, call_started_at=now)

    before = stripe_sandbox.stats()["requests"]
    assert execution.refund_submit(refund_id=refund.pk) is None
    assert stripe_sandbox.stats()["requests"] == before

    expired = now - timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS + 1)
    RefundRequest.objects.filter(pk=refund.pk).update(call_started_at=expired)
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.call_started_at is None
    assert len(provider_refunds(stripe_sandbox, refund)) == 1


def test_transient_errors_are_retried_then_flagged_for_a_person(file_refund, stripe_sandbox, stripe_sandbox_clean, settings):
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 3
    refund = file_refund(2000)
    stripe_sandbox.set_faults(status=503, count=10, path_prefix="/v1/refunds", methods=["POST"])

    for _ in range(2):
        with pytest.raises(TransientProviderError):
            execution.refund_submit(refund_id=refund.pk)
        RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.NEEDS_ATTENTION
    assert refund.submit_attempts == 3
    assert "kept failing after 3 attempts" in refund.error_message
    errors_logged = refund.logs.filter(event=RefundLog.Event.PROVIDER_ERROR).count()
    assert errors_logged == 3
    assert provider_refunds(stripe_sandbox, refund) == []


def test_manual_retry_after_attention_completes_with_one_refund(
    file_refund, stripe_sandbox, stripe_sandbox_clean, settings, manager
):
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 1
    refund = file_refund(2000)
    stripe_sandbox.set_faults(status=502, count=1, path_prefix="/v1/refunds", methods=["POST"])
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.NEEDS_ATTENTION

    execution.refund_retry(refund_id=refund.pk, actor=manager)
    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.error_code == ""
    assert len(provider_refunds(stripe_sandbox, refund)) == 1


def test_permanent_refusal_fails_with_stripes_code(file_refund, stripe_sandbox):
    refund = file_refund(2000, payment_amount=3000)
    # Someone refunded most of the payment in the Stripe dashboard after intake.
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": refund.connector_transaction_id, "amount": 2500})

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    assert refund.error_code == "amount_too_large"
    assert refund.error_message


def test_pending_refund_is_polled_until_it_succeeds(file_refund, stripe_sandbox):
    refund = file_refund(2000, behavior="stay_pending")
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.provider_status) == (RefundStatus.PROCESSING, "pending")
    assert refund.next_action_at is not None

    execution.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING

    stripe_sandbox.settle(refund.connector_refund_id, "succeeded")
    execution.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.resolved_at


def test_pending_refund_that_fails_at_the_provider(file_refund, stripe_sandbox):
    refund = file_refund(2000, behavior="stay_pending")
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()

    stripe_sandbox.settle(refund.connector_refund_id, "failed")
    execution.refund_sync_status(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    assert refund.error_code  # Stripe's failure_reason


def test_a_final_refund_never_moves_back(file_refund):
    refund = file_refund(2000)
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()

    stale = RefundResult(refund.connector_refund_id, ProviderRefundStatus.PENDING, Money(2000, "USD"))
    execution.refund_record_provider_result(refund_id=refund.pk, result=stale)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.logs.last().event == RefundLog.Event.PROVIDER_ANSWER  # heard, logged, ignored


def test_unverified_refund_is_checked_before_execution(agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(3000)
    stripe_sandbox.set_faults(status=503, count=3, path_prefix="/v1/payment_intents", methods=["GET"])
    refund, _ = intake.refund_request_create(
        merchant_refund_id="unverified", provider="stripe", connector_transaction_id=pi,
        amount=Money(4000, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    stripe_sandbox.clear_faults()
    assert refund.status == RefundStatus.APPROVED and not refund.payment_verified

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    assert refund.error_code == "amount_exceeds_refundable"
    assert provider_refunds(stripe_sandbox, refund) == []
