"""Disputes through a real Celery worker, the Stripe sandbox over HTTP and its signed webhooks
posted to the running app."""

import pytest

from refunds.models import Payment, RefundRequest, RefundStatus, WebhookEvent
from tests.fixtures.worker import wait_until
from tests.integration.waiting import wait_for_status
from tests.refunds.test_disputes import post_refund

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SECRET = "whsec_disputes_integration"


def stripe_refunds(stripe_sandbox, pi):
    return list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}))


@pytest.fixture
def webhooks(live_server, stripe_sandbox, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    stripe_sandbox.set_webhook(f"{live_server.url}/webhooks/stripe/", SECRET)
    yield
    stripe_sandbox.remove_webhook()


def test_an_approved_refund_refused_with_charge_disputed_is_held_and_nothing_is_refunded(
    live_worker, api, agent, manager, stripe_sandbox
):
    pi = stripe_sandbox.create_payment(20_000)
    assert post_refund(api, agent, pi, 9_000, "dx-approved").json()["status"] == "pending_approval"
    # The chargeback arrives between filing and approval; no webhook tells us.
    dispute = stripe_sandbox.open_dispute(pi, reason="fraudulent")
    assert api(manager).post("/api/refunds/dx-approved/approve/", {"comment": "ok"}, format="json").status_code == 200

    refund = wait_for_status("dx-approved", RefundStatus.NEEDS_ATTENTION)

    assert refund.error_code == "payment_disputed"
    assert dispute["id"] in refund.error_message and "fraudulent" in refund.error_message
    assert refund.unconfirmed_calls == 0
    assert stripe_refunds(stripe_sandbox, pi) == []
    assert api(agent).get("/api/refunds/dx-approved/").json()["error"]["code"] == "payment_disputed"
    assert Payment.objects.get(connector_transaction_id=pi).dispute_state == "open"


def test_a_dispute_webhook_holds_a_waiting_refund_and_flags_the_refunded_one(
    live_worker, webhooks, api, agent, stripe_sandbox
):
    pi = stripe_sandbox.create_payment(30_000)
    post_refund(api, agent, pi, 1_000, "dx-done")
    wait_for_status("dx-done", RefundStatus.SUCCEEDED)
    assert post_refund(api, agent, pi, 9_000, "dx-waiting").json()["status"] == "pending_approval"

    dispute = stripe_sandbox.open_dispute(pi, reason="duplicate")

    wait_until(
        lambda: WebhookEvent.objects.filter(type="charge.dispute.created", processed_at__isnull=False).exists(),
        timeout=60, message="charge.dispute.created processed",
    )
    refund = wait_for_status("dx-waiting", RefundStatus.NEEDS_ATTENTION)
    assert refund.error_code == "payment_disputed" and dispute["id"] in refund.error_message
    done = RefundRequest.objects.get(merchant_refund_id="dx-done")
    wait_until(lambda: RefundRequest.objects.get(pk=done.pk).disputed_at is not None, message="flagged")
    assert [r.amount for r in stripe_refunds(stripe_sandbox, pi)] == [1_000]

    # Won: Stripe takes refunds again and so does intake.
    stripe_sandbox.close_dispute(dispute["id"], "won")
    wait_until(lambda: Payment.objects.get(connector_transaction_id=pi).dispute_state == "won", timeout=60,
               message="the closed event processed")
    assert post_refund(api, agent, pi, 800, "dx-after").status_code == 201
    wait_for_status("dx-after", RefundStatus.SUCCEEDED)
    assert sorted(r.amount for r in stripe_refunds(stripe_sandbox, pi)) == [800, 1_000]
