"""Disputes against the Stripe sandbox over HTTP: the adapter reports them, each webhook
updates the payment (once per event), intake refuses with 422 `payment_disputed` unless a
finance manager overrides with a reason, refunds waiting or approved are held, a refund that had
already succeeded is flagged "refunded and disputed", and a dispute won lets refunds through."""

import hashlib
import hmac
import json
import time

import pytest
from django.utils import timezone

from approvals.services import refund_approve
from refunds.api.serializers import RefundSerializer
from refunds.models import Payment, RefundLog, RefundRequest, RefundStatus, WebhookEvent
from refunds.money import Money
from refunds.providers import get_provider
from refunds.providers.base import DisputeState, PermanentProviderError
from refunds.reports.calendar import business_zone
from refunds.selectors import refund_with_approvals
from refunds.services import execution, intake
from refunds.services.webhooks import webhook_event_process

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_disputes"
BIG = 9_000  # over the auto-approve threshold (5,000): waits for a finance manager
SMALL = 1_000  # auto-approved


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def deliver(client, event: dict):
    payload = json.dumps(event).encode()
    timestamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return client.post("/webhooks/stripe/", data=payload, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={digest}")


def dispute_events(stripe_sandbox, dispute_id: str) -> list[dict]:
    """The sandbox's events about one dispute, oldest first."""
    events = [e.to_dict() for e in stripe_sandbox.client().v1.events.list(params={"limit": 100}).data]
    return [e for e in reversed(events) if e["data"]["object"]["id"] == dispute_id]


def deliver_and_process(client, event: dict):
    response = deliver(client, event)
    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get(event_id=event["id"])
    webhook_event_process(event_pk=stored.pk)
    return response


def file(user, pi, amount, mid, **kw):
    refund, _ = intake.refund_request_create(
        merchant_refund_id=mid, provider="stripe", connector_transaction_id=pi, amount=Money(amount, "USD"),
        reason="customer asked", metadata={}, product="", requested_by=user, **kw,
    )
    return refund


def post_refund(api, user, pi, amount, mid, **extra):
    return api(user).post(
        "/api/refunds/",
        {"merchant_refund_id": mid, "connector_transaction_id": pi,
         "amount": {"minor_amount": amount, "currency": "USD"}, **extra},
        format="json",
    )


# --- the adapter ---------------------------------------------------------------------------


def test_get_payment_reports_no_dispute_then_the_open_one_then_its_end(stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    stripe = get_provider("stripe")
    before = stripe.get_payment(connector_transaction_id=pi)
    assert before.disputes_known and before.dispute is None

    opened = stripe_sandbox.open_dispute(pi, amount=7_000, reason="fraudulent")
    during = stripe.get_payment(connector_transaction_id=pi).dispute
    assert (during.dispute_id, during.state, during.provider_status, during.reason, during.amount) == (
        opened["id"], DisputeState.OPEN, "needs_response", "fraudulent", Money(7_000, "USD"))
    assert during.is_open and not during.refundable
    # Asked by its Charge id, the same dispute.
    [charge] = [a for a in stripe.get_payment(connector_transaction_id=pi).aliases]
    assert get_provider("stripe").get_payment(connector_transaction_id=charge).dispute.dispute_id == opened["id"]

    stripe_sandbox.close_dispute(opened["id"], "lost")
    after = stripe.get_payment(connector_transaction_id=pi).dispute
    assert (after.state, after.provider_status, after.is_open) == (DisputeState.LOST, "lost", False)


def test_other_providers_say_they_do_not_know(robokassa_sandbox):
    assert get_provider("stripe").reports_disputes
    assert not get_provider("robokassa").reports_disputes


def test_stripes_charge_disputed_refusal_is_payment_disputed(stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.open_dispute(pi)
    with pytest.raises(PermanentProviderError) as refused:
        get_provider("stripe").create_refund(
            merchant_refund_id="direct", connector_transaction_id=pi, amount=Money(100, "USD"), reason="",
            metadata={}, idempotency_key="direct-disputed",
        )
    assert (refused.value.code, refused.value.http_status) == ("payment_disputed", 422)
    assert "charged back" in refused.value.message
    assert list(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi})) == []


# --- webhooks ------------------------------------------------------------------------------


def test_each_dispute_webhook_updates_the_payment_once(client, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(20_000)
    waiting = file(agent, pi, BIG, "dw-waiting")
    approved = file(agent, pi, BIG, "dw-approved")
    refund_approve(refund_id=approved.pk, approver=manager, comment="ok")
    assert RefundRequest.objects.get(pk=approved.pk).status == RefundStatus.APPROVED

    dispute = stripe_sandbox.open_dispute(pi, reason="product_not_received")
    created, withdrawn = dispute_events(stripe_sandbox, dispute["id"])
    assert (created["type"], withdrawn["type"]) == ("charge.dispute.created", "charge.dispute.funds_withdrawn")

    deliver_and_process(client, created)
    payment = Payment.objects.get(connector_transaction_id=pi)
    assert (payment.dispute_id, payment.dispute_state, payment.dispute_status, payment.dispute_reason) == (
        dispute["id"], "open", "needs_response", "product_not_received")
    assert payment.dispute_amount_minor == 20_000
    for refund in (waiting, approved):
        refund.refresh_from_db()
        assert refund.status == RefundStatus.NEEDS_ATTENTION
        assert refund.error_code == "payment_disputed"
        assert dispute["id"] in refund.error_message and "product_not_received" in refund.error_message
    logs_after_first = RefundLog.objects.count()

    # The same event again is recognised; the next one finds nothing more to do.
    replay = deliver(client, created)
    assert replay.json()["duplicate"] is True
    deliver_and_process(client, withdrawn)
    assert WebhookEvent.objects.filter(event_id=created["id"]).count() == 1
    assert RefundLog.objects.count() == logs_after_first
    assert set(RefundRequest.objects.values_list("status", flat=True)) == {RefundStatus.NEEDS_ATTENTION}

    stripe_sandbox.close_dispute(dispute["id"], "won")
    closed = [e for e in dispute_events(stripe_sandbox, dispute["id"]) if e["type"] == "charge.dispute.closed"][0]
    deliver_and_process(client, closed)
    payment.refresh_from_db()
    assert (payment.dispute_state, payment.dispute_status) == ("won", "won")
    assert WebhookEvent.objects.get(event_id=closed["id"]).processed_at is not None


def test_a_dispute_on_a_refunded_payment_is_flagged_once_and_summarised(client, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    refund = file(agent, pi, SMALL, "dw-done")
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.disputed_at is None

    dispute = stripe_sandbox.open_dispute(pi)
    for event in dispute_events(stripe_sandbox, dispute["id"]):
        deliver_and_process(client, event)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED  # the money went; the refund is not undone
    assert refund.disputed_at is not None
    [note] = refund.logs.filter(data__code="refunded_and_disputed")
    assert dispute["id"] in note.message and "money at risk twice" in note.message
    assert api_disputed_at(refund) is not None


def api_disputed_at(refund):
    return RefundSerializer(refund_with_approvals(RefundRequest.objects.all()).get(pk=refund.pk)).data["disputed_at"]


# --- intake --------------------------------------------------------------------------------


def test_intake_refuses_a_disputed_payment_with_422_and_holds_the_others(api, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(30_000)
    waiting = file(agent, pi, BIG, "di-waiting")
    approved = file(agent, pi, BIG, "di-approved")
    refund_approve(refund_id=approved.pk, approver=manager, comment="ok")
    dispute = stripe_sandbox.open_dispute(pi, reason="fraudulent")  # no webhook: intake finds it

    response = post_refund(api, agent, pi, 500, "di-refused")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "payment_disputed" and error["field"] == "connector_transaction_id"
    assert dispute["id"] in error["message"] and "fraudulent" in error["message"]
    assert not RefundRequest.objects.filter(merchant_refund_id="di-refused").exists()
    for refund in (waiting, approved):
        refund.refresh_from_db()
        assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "payment_disputed")
    assert Payment.objects.get(connector_transaction_id=pi).dispute_state == "open"


def test_a_finance_manager_overrides_with_a_reason_and_it_is_logged(api, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(30_000)
    other = file(agent, pi, BIG, "do-other")
    dispute = stripe_sandbox.open_dispute(pi, inquiry=True)  # an inquiry: Stripe still takes refunds

    without = post_refund(api, manager, pi, 2_000, "do-manager")
    assert without.status_code == 422 and without.json()["error"]["code"] == "payment_disputed"

    reason = "Customer agreed to withdraw the inquiry once refunded"
    response = post_refund(api, manager, pi, 2_000, "do-manager", dispute_override_reason=reason)

    assert response.status_code == 201, response.content
    refund = RefundRequest.objects.get(merchant_refund_id="do-manager")
    assert refund.dispute_overridden == dispute["id"]
    [note] = refund.logs.filter(data__code="dispute_override")
    assert note.actor == manager and reason in note.message and dispute["id"] in note.message
    # The audit row's data (the log's admin page) names the dispute and the reason as given.
    assert note.data == {"code": "dispute_override", "dispute": dispute["id"], "reason": reason}
    assert [(log.event, log.to_status) for log in refund.logs.all()] == [
        ("requested", "pending_approval"), ("note", ""), ("status_changed", "approved"),
    ]
    # The replay is the same refund; the others on the payment are held all the same.
    again = post_refund(api, manager, pi, 2_000, "do-manager", dispute_override_reason=reason)
    assert again.status_code == 200 and again.json()["merchant_refund_id"] == "do-manager"
    # The override's reason is part of the request: another one under the same id is not a replay.
    other_reason = post_refund(api, manager, pi, 2_000, "do-manager", dispute_override_reason="Another reason")
    assert other_reason.status_code == 409 and other_reason.json()["error"]["code"] == "idempotency_conflict"
    other.refresh_from_db()
    assert other.status == RefundStatus.NEEDS_ATTENTION and other.error_code == "payment_disputed"
    # Auto-approved, it goes to Stripe, which takes refunds during an inquiry.
    assert refund.status == RefundStatus.APPROVED
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.disputed_at is None  # refunded knowingly, as the settlement


def test_an_agent_may_not_override(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.open_dispute(pi)

    response = post_refund(api, agent, pi, 500, "do-agent", dispute_override_reason="please")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert response.json()["error"]["field"] == "dispute_override_reason"
    assert response.json()["error"]["message"] == "Only a finance manager may file a refund on a disputed payment."
    assert not RefundRequest.objects.exists()


def test_a_dispute_known_from_a_webhook_refuses_even_while_stripe_is_unreachable(client, api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    file(agent, pi, SMALL, "du-first")  # the payment row exists
    dispute = stripe_sandbox.open_dispute(pi)
    deliver_and_process(client, dispute_events(stripe_sandbox, dispute["id"])[0])
    stripe_sandbox.set_faults(503, count=None)
    try:
        response = post_refund(api, agent, pi, 500, "du-second")
        # An agent's override reason does not get it through either: only a finance manager's would.
        overriding = post_refund(api, agent, pi, 500, "du-third", dispute_override_reason="Customer agreed")
    finally:
        stripe_sandbox.clear_faults()
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["field"]) == (422, "payment_disputed", "connector_transaction_id")
    assert dispute["id"] in error["message"] and "could pay the customer twice" in error["message"]
    assert overriding.status_code == 403
    assert overriding.json()["error"]["field"] == "dispute_override_reason"
    assert not RefundRequest.objects.filter(merchant_refund_id__in=["du-second", "du-third"]).exists()


def test_a_won_dispute_lets_refunds_through_again(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    dispute = stripe_sandbox.open_dispute(pi)
    assert post_refund(api, agent, pi, 700, "dwon-1").status_code == 422

    stripe_sandbox.close_dispute(dispute["id"], "won")
    response = post_refund(api, agent, pi, 700, "dwon-2")

    assert response.status_code == 201 and response.json()["status"] == "approved"
    refund = RefundRequest.objects.get(merchant_refund_id="dwon-2")
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert Payment.objects.get(connector_transaction_id=pi).dispute_state == "won"


def test_a_refund_held_before_approval_goes_back_to_the_approvers_on_retry(api, agent, manager, client, stripe_sandbox):
    pi = stripe_sandbox.create_payment(20_000)
    waiting = file(agent, pi, BIG, "dr-waiting")
    dispute = stripe_sandbox.open_dispute(pi)
    deliver_and_process(client, dispute_events(stripe_sandbox, dispute["id"])[0])
    waiting.refresh_from_db()
    assert waiting.status == RefundStatus.NEEDS_ATTENTION

    stripe_sandbox.close_dispute(dispute["id"], "won")
    execution.refund_retry(refund_id=waiting.pk, actor=manager, comment="dispute won")

    waiting.refresh_from_db()
    assert waiting.status == RefundStatus.PENDING_APPROVAL  # never straight to Stripe unapproved
    assert (waiting.error_code, waiting.approved_at) == ("", None)


def test_the_daily_summary_shows_refunded_and_disputed(client, agent, accountant, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    refund = file(agent, pi, SMALL, "ds-done")
    execution.refund_submit(refund_id=refund.pk)
    dispute = stripe_sandbox.open_dispute(pi)
    deliver_and_process(client, dispute_events(stripe_sandbox, dispute["id"])[0])

    today = timezone.now().astimezone(business_zone()).date()
    client.force_login(accountant)
    page = client.get(f"/reports/summary/?start={today.isoformat()}&end={today.isoformat()}")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="refunded-disputed-count">1<' in html
    assert "ds-done" in html and dispute["id"] in html
