"""The whole pipeline through a real Celery worker process (and its beat), the Stripe sandbox
over HTTP, and a local Slack endpoint. On PostgreSQL and Redis when DATABASE_URL/REDIS_URL say so."""

import pytest

from refunds.models import RefundRequest, RefundStatus, WebhookEvent
from tests.fixtures.worker import wait_until
from tests.integration.waiting import status_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def final_status(merchant_refund_id, expected, timeout=45):
    wait_until(lambda: status_of(merchant_refund_id) == expected, timeout=timeout, message=f"{merchant_refund_id} {expected}")
    return RefundRequest.objects.get(merchant_refund_id=merchant_refund_id)


def test_auto_approved_refund_succeeds_through_the_worker(live_worker, api, agent, stripe_sandbox, slack):
    pi = stripe_sandbox.create_payment(10_000)

    response = api(agent).post(
        "/api/refunds/",
        {"merchant_refund_id": "int-auto", "connector_transaction_id": pi, "amount": {"minor_amount": 1500, "currency": "USD"}},
        format="json",
    )
    assert response.status_code == 201 and response.json()["status"] == "approved"

    refund = final_status("int-auto", RefundStatus.SUCCEEDED)
    [at_stripe] = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi})
    assert (at_stripe.id, at_stripe.amount, at_stripe.status) == (refund.connector_refund_id, 1500, "succeeded")
    detail = api(agent).get("/api/refunds/int-auto/").json()
    assert detail["status"] == "succeeded" and detail["connector_refund_id"] == at_stripe.id
    # Two messages for the channel: intake's (filed and approved at once), then the worker's.
    slack.wait_for(lambda m: "Refund succeeded" in m["text"] and "int-auto" in m["text"])
    slack.wait_for(lambda m: "Refund approved" in m["text"] and "int-auto" in m["text"])
    assert sorted(m["text"] for m in slack.messages if "int-auto" in m["text"]) == [
        ":moneybag: Refund succeeded: int-auto 15.00 USD (processing → succeeded)",
        ":white_check_mark: Refund approved: int-auto 15.00 USD (new → pending_approval → approved)",
    ]


def test_approved_pending_refund_is_polled_to_final(live_worker, api, agent, manager, stripe_sandbox, slack):
    pi = stripe_sandbox.create_payment(50_000, behavior="pending")
    filed = api(agent).post(
        "/api/refunds/",
        {"merchant_refund_id": "int-big", "connector_transaction_id": pi, "amount": {"minor_amount": 30_000, "currency": "USD"}},
        format="json",
    )
    assert filed.json()["status"] == "pending_approval"
    slack.wait_for(lambda m: "awaiting approval" in m["text"] and "int-big" in m["text"])

    approved = api(manager).post("/api/refunds/int-big/approve/", {"comment": "checked the order"}, format="json")
    assert approved.status_code == 200

    refund = final_status("int-big", RefundStatus.SUCCEEDED)
    assert refund.poll_count >= 1  # it was pending at Stripe and the beat polled it to the end
    events = list(refund.logs.values_list("event", "to_status"))
    assert ("status_changed", "processing") in events and events[-1] == ("status_changed", "succeeded")
    assert len(list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}))) == 1


def test_failing_refund_ends_failed_with_the_providers_reason(live_worker, api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000, behavior="fail")
    api(agent).post(
        "/api/refunds/",
        {"merchant_refund_id": "int-fail", "connector_transaction_id": pi, "amount": {"minor_amount": 1000, "currency": "USD"}},
        format="json",
    )

    refund = final_status("int-fail", RefundStatus.FAILED)
    assert refund.error_code == "expired_or_canceled_card"
    assert api(agent).get("/api/refunds/int-fail/").json()["error"]["code"] == "expired_or_canceled_card"


def test_a_lost_message_is_recovered_by_the_dispatcher(live_worker, agent, stripe_sandbox):
    """A refund approved while the broker was unreachable: the database says it is due."""
    from django.db import transaction

    from refunds.services import intake
    from refunds.money import Money

    pi = stripe_sandbox.create_payment(10_000)
    with transaction.atomic():
        refund, _ = intake.refund_request_create(
            merchant_refund_id="int-lost", provider="stripe", connector_transaction_id=pi,
            amount=Money(700, "USD"), reason="", metadata={}, product="", requested_by=agent,
        )
        # Drop the publication the commit would have made, as a dead broker would.
        transaction.get_connection().run_on_commit.clear()
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=refund.created_at)

    final_status("int-lost", RefundStatus.SUCCEEDED)
    assert len(list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}))) == 1


def test_stripe_webhooks_are_delivered_verified_and_agree_with_polling(
    live_worker, live_server, api, agent, stripe_sandbox, settings
):
    """The sandbox signs and posts its refund events to the running app; they are verified,
    stored once and processed by the worker, ending where polling ends."""
    secret = "whsec_integration_test"
    settings.STRIPE_WEBHOOK_SECRET = secret
    stripe_sandbox.set_webhook(f"{live_server.url}/webhooks/stripe/", secret)
    try:
        pi = stripe_sandbox.create_payment(10_000, behavior="pending")
        api(agent).post(
            "/api/refunds/",
            {"merchant_refund_id": "int-hook", "connector_transaction_id": pi,
             "amount": {"minor_amount": 2_000, "currency": "USD"}},
            format="json",
        )
        refund = final_status("int-hook", RefundStatus.SUCCEEDED)

        def refund_events():
            events = WebhookEvent.objects.filter(type__startswith="refund.", payload__data__object__id=refund.connector_refund_id)
            return set(events.filter(processed_at__isnull=False).values_list("type", flat=True))

        wait_until(lambda: {"refund.created", "refund.updated"} <= refund_events(), message="processed refund events")
    finally:
        stripe_sandbox.remove_webhook()
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.logs.filter(to_status=RefundStatus.SUCCEEDED).count() == 1
    assert len(list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}))) == 1
