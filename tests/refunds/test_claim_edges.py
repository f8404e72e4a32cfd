"""The claim before a create call, at the edges the mutation run (tests/README.md) found
untested by the fast tests: while a call is in flight its refund is leased (a duplicate task
arriving then does not call again, on the first attempt or a retry), and the lease says when a
dispatcher may look again if the worker dies mid-call; a refund held back by our own rate limit
asks the provider nothing, and a task for a refund that is not approved does nothing at all."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from refunds.models import RefundRequest, RefundStatus
from refunds.providers.stripe import StripeProvider
from refunds.ratelimit import RateLimited, provider_slot_acquire
from refunds.services import execution
from tests.factories import RefundFactory
from tests.refunds.test_execution_edges import approved  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def duplicate_during_the_call(monkeypatch):
    """Every create call first delivers the same task again (a duplicate, a redelivery) and
    records what the row looked like mid-call; returns the list of those records."""
    created = StripeProvider.create_refund
    seen = []

    def create_with_a_duplicate(self, **call):
        refund = RefundRequest.objects.get(merchant_refund_id=call["merchant_refund_id"])
        seen.append({
            "call_started_at": refund.call_started_at, "next_action_at": refund.next_action_at,
            "at": timezone.now(), "duplicate": execution.refund_submit(refund_id=refund.pk),
        })
        return created(self, **call)

    monkeypatch.setattr(StripeProvider, "create_refund", create_with_a_duplicate)
    return seen


def test_a_duplicate_task_during_the_first_call_does_not_call_again(
    approved, stripe_sandbox, duplicate_during_the_call, settings  # noqa: F811
):
    seen = duplicate_during_the_call
    refund = approved()
    stripe_sandbox.reset_stats()

    execution.refund_submit(refund_id=refund.pk)

    [mid_call] = seen  # one create call, and the duplicate made none
    assert mid_call["duplicate"] is None
    lease = timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)
    assert mid_call["at"] - mid_call["call_started_at"] < timedelta(seconds=10)
    # If this worker dies now, the dispatcher looks again once the lease has run out, not before.
    assert mid_call["next_action_at"] - mid_call["call_started_at"] == lease
    assert stripe_sandbox.stats()["refunds_created"] == 1
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED


def test_a_duplicate_task_during_a_retried_call_does_not_call_again(
    approved, stripe_sandbox, stripe_sandbox_clean, duplicate_during_the_call, settings  # noqa: F811
):
    seen = duplicate_during_the_call
    refund = approved()
    stripe_sandbox.set_faults(status=502, count=1, path_prefix="/v1/refunds", methods=["POST"])
    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)  # the retry's time has come
    seen.clear()

    execution.refund_submit(refund_id=refund.pk)  # the retry, still processing: the second branch

    [mid_call] = seen
    assert mid_call["duplicate"] is None
    lease = timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)
    assert mid_call["at"] - mid_call["call_started_at"] < timedelta(seconds=10)
    assert mid_call["next_action_at"] - mid_call["call_started_at"] == lease
    refund.refresh_from_db()
    assert (refund.status, refund.submit_attempts) == (RefundStatus.SUCCEEDED, 2)


def fully_booked(settings):
    """One request per 1,000 s to Stripe, and this window's slot already taken by another caller."""
    settings.PROVIDER_RATE_LIMITS = {"stripe": 0.001}
    settings.PROVIDER_RATE_MAX_WAIT_SECONDS = 0
    cache.delete("ratelimit:stripe:next")
    provider_slot_acquire("stripe", max_wait=0)


@pytest.mark.parametrize("verified", [True, False], ids=["payment verified", "payment to verify first"])
def test_a_refund_held_back_by_our_own_rate_asks_stripe_nothing_and_costs_no_attempt(
    approved, stripe_sandbox, settings, verified  # noqa: F811
):
    refund = approved()
    RefundRequest.objects.filter(pk=refund.pk).update(payment_verified=verified)
    logged = refund.logs.count()
    fully_booked(settings)
    stripe_sandbox.reset_stats()

    with pytest.raises(RateLimited):
        execution.refund_submit(refund_id=refund.pk)

    assert stripe_sandbox.stats()["requests"] == {}
    refund.refresh_from_db()
    assert (refund.status, refund.submit_attempts, refund.logs.count()) == (RefundStatus.APPROVED, 0, logged)


@pytest.mark.parametrize("status", [RefundStatus.PENDING_APPROVAL, RefundStatus.REJECTED, RefundStatus.CANCELED])
def test_a_task_for_a_refund_that_is_not_approved_asks_the_provider_nothing(
    agent, stripe_sandbox, settings, status
):
    """A stray or late submit task (the refund was rejected or canceled meanwhile) neither
    verifies the payment nor books a slot of the provider's rate."""
    refund = RefundFactory(status=status, payment_verified=False, connector_transaction_id=stripe_sandbox.create_payment(5_000))
    fully_booked(settings)  # a booking attempt would raise RateLimited
    stripe_sandbox.reset_stats()

    assert execution.refund_submit(refund_id=refund.pk) is None

    assert stripe_sandbox.stats()["requests"] == {}
    refund.refresh_from_db()
    assert (refund.status, refund.payment_verified, refund.logs.count()) == (status, False, 0)
