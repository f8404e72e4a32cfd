"""Concurrent requests against one payment: row locks, not luck, keep the sum within it.
Meaningful on PostgreSQL (bin/test with DATABASE_URL, as .ci/run does); SQLite serialises writers."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from approvals.services import refund_approve
from refunds import errors
from refunds.services import intake, payments
from refunds.models import RefundRequest, RefundStatus
from refunds.money import Money
from tests import factories
from tests.markers import needs_row_locks

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(fn):
    def run(*args):
        try:
            return fn(*args)
        except errors.RefundError as error:
            return error
        finally:
            connection.close()

    return run


@needs_row_locks
def test_concurrent_partial_refunds_never_exceed_the_payment(stripe_sandbox, monkeypatch, settings):
    # Every lookup must reach the sandbox: a rate-limited one would be accepted unverified
    # (checked again before execution, see test_execution), which is not what this tests.
    settings.PROVIDER_RATE_LIMITS = {}
    agent = factories.agent(username="agent")
    pi = stripe_sandbox.create_payment(10_000)
    remaining = payments.payment_refundable_remaining

    def slow_remaining(**kwargs):
        # Widen the window between reading the remainder and inserting the refund, so that
        # without the payment row lock the threads would all read the same remainder.
        value = remaining(**kwargs)
        time.sleep(0.05)
        return value

    monkeypatch.setattr(payments, "payment_refundable_remaining", slow_remaining)

    @in_thread
    def file(i):
        return intake.refund_request_create(
            merchant_refund_id=f"race-{i}", provider="stripe", connector_transaction_id=pi,
            amount=Money(3_000, "USD"), reason="", metadata={}, product="", requested_by=agent,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(file, range(8)))

    accepted = [o for o in outcomes if isinstance(o, tuple)]
    refused = [o for o in outcomes if isinstance(o, errors.AmountExceedsRefundable)]
    assert (len(accepted), len(refused)) == (3, 5)
    assert RefundRequest.objects.count() == 3


@needs_row_locks
def test_concurrent_approvals_of_one_request_approve_once(stripe_sandbox, django_capture_on_commit_callbacks):
    agent = factories.agent(username="agent")
    managers = [factories.manager(username=f"m{i}") for i in range(6)]
    refund = factories.RefundFactory(requested_by=agent, amount_minor=9_000)

    @in_thread
    def approve(manager):
        return refund_approve(refund_id=refund.pk, approver=manager, comment="go")

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(approve, managers))

    assert sum(isinstance(o, RefundRequest) for o in outcomes) == 1
    assert all(o.code == "not_awaiting_approval" for o in outcomes if isinstance(o, errors.RefundError))
    refund.refresh_from_db()
    assert refund.status == RefundStatus.APPROVED and refund.approvals.count() == 1


@pytest.mark.django_db
def test_remainder_counts_refunds_sent_since_the_provider_was_asked():
    """The provider's refunded figure is read before the lock; a refund a worker sent meanwhile
    must still count (this race let a concurrent intake through once)."""
    payment = factories.PaymentFactory(amount_minor=10_000, amount_refunded_minor=0)  # stale: says nothing refunded
    factories.RefundFactory(payment=payment, amount_minor=6_000, status=RefundStatus.PROCESSING, connector_refund_id="re_a")
    factories.RefundFactory(payment=payment, amount_minor=1_000, status=RefundStatus.APPROVED)
    factories.RefundFactory(payment=payment, amount_minor=2_000, status=RefundStatus.FAILED, connector_refund_id="re_b")

    assert payments.payment_refundable_remaining(payment=payment) == 3_000
    payment.amount_refunded_minor = 8_000  # fresh: ours (6000) and 2000 refunded in the dashboard
    assert payments.payment_refundable_remaining(payment=payment) == 1_000


@needs_row_locks
def test_an_event_another_worker_is_processing_is_skipped_not_waited_for(stripe_sandbox):
    """A webhook event delivered twice at once (Stripe retries, two worker threads): while one
    worker holds the event's row, the other finds it locked and moves on at once, without
    asking Stripe or counting an attempt (the holder here only holds the lock)."""
    import threading

    from django.db import transaction

    from refunds.models import WebhookEvent
    from refunds.services.webhooks import webhook_event_process

    event = WebhookEvent.objects.create(provider="stripe", event_id="evt_busy", type="refund.updated", payload={})
    locked, done = threading.Event(), threading.Event()

    def first_worker():
        try:
            with transaction.atomic():
                WebhookEvent.objects.select_for_update().get(pk=event.pk)
                locked.set()
                done.wait(timeout=15)  # until the second worker has returned (or gave up waiting)
        finally:
            connection.close()

    holder = threading.Thread(target=first_worker)
    holder.start()
    try:
        assert locked.wait(timeout=15)
        requests = stripe_sandbox.stats()["requests"]
        webhook_event_process(event_pk=event.pk)
        # Read while the first worker still holds the row: nothing was done meanwhile.
        event.refresh_from_db()
        assert (event.attempts, event.processed_at, stripe_sandbox.stats()["requests"]) == (0, None, requests)
        assert holder.is_alive()
    finally:
        done.set()
        holder.join()
