"""POST /webhooks/stripe/: signatures, once per event, events agree with polling, refunds made
in the Stripe dashboard are recorded. Event bodies are the sandbox's own events."""

import hashlib
import hmac
import json
import time

import pytest

from refunds.services import execution, intake
from refunds.models import RefundOrigin, RefundRequest, RefundStatus, WebhookEvent
from refunds.money import Money
from refunds.providers import get_provider
from refunds.providers.base import TransientProviderError
from refunds.services.webhooks import webhook_event_process

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_refundoffice"
URL = "/webhooks/stripe/"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def sign(payload: bytes, *, secret=SECRET, timestamp=None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(client, event: dict, **sign_kw):
    payload = json.dumps(event).encode()
    return client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload, **sign_kw))


def sandbox_events(stripe_sandbox, refund_id: str) -> list[dict]:
    events = [e.to_dict() for e in stripe_sandbox.client().v1.events.list(params={"limit": 100}).data]
    return [e for e in events if e["data"]["object"]["id"] == refund_id]


def file_and_submit(agent, stripe_sandbox, *, behavior=None, amount=2000):
    pi = stripe_sandbox.create_payment(10_000, behavior=behavior)
    refund, _ = intake.refund_request_create(
        merchant_refund_id=f"wh-{pi}", provider="stripe", connector_transaction_id=pi,
        amount=Money(amount, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    return refund


def test_bad_or_stale_signatures_are_400_and_change_nothing(client):
    event = {"id": "evt_1", "type": "refund.updated", "data": {"object": {"id": "re_1", "object": "refund"}}}
    payload = json.dumps(event).encode()

    wrong_secret = deliver(client, event, secret="whsec_other")
    stale = deliver(client, event, timestamp=int(time.time()) - 3600)
    missing = client.post(URL, data=payload, content_type="application/json")
    garbage = client.post(URL, data=b"not json", content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(b"not json"))

    for response, code in ((wrong_secret, "invalid_signature"), (stale, "invalid_signature"),
                           (missing, "invalid_signature"), (garbage, "invalid_payload")):
        assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert not WebhookEvent.objects.exists()


def test_each_event_is_processed_once(client, agent, stripe_sandbox, django_capture_on_commit_callbacks, published_tasks):
    refund = file_and_submit(agent, stripe_sandbox, behavior="stay_pending")
    stripe_sandbox.settle(refund.connector_refund_id, "succeeded")
    [updated] = [e for e in sandbox_events(stripe_sandbox, refund.connector_refund_id) if e["type"] == "refund.updated"]

    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(client, updated)
    published_by_first = list(published_tasks)
    with django_capture_on_commit_callbacks(execute=True):
        replay = deliver(client, updated)

    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1
    stored = WebhookEvent.objects.get()
    assert published_by_first == [("webhook_event_process_task", (stored.pk,))]
    assert published_tasks == published_by_first  # the replay published nothing

    webhook_event_process(event_pk=WebhookEvent.objects.get().pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert WebhookEvent.objects.get().processed_at is not None


def test_out_of_order_events_never_move_a_final_refund_back(client, agent, stripe_sandbox):
    refund = file_and_submit(agent, stripe_sandbox, behavior="stay_pending")
    stripe_sandbox.settle(refund.connector_refund_id, "succeeded")
    events = sandbox_events(stripe_sandbox, refund.connector_refund_id)
    updated = next(e for e in events if e["type"] == "refund.updated")
    created = next(e for e in events if e["type"] == "refund.created")  # says "pending"
    assert created["data"]["object"]["status"] == "pending"

    for event in (updated, created):  # the older event arrives last
        deliver(client, event)
        webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=event["id"]).pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.logs.filter(to_status=RefundStatus.SUCCEEDED).count() == 1


def test_refund_failed_after_success_is_corrected(client, agent, stripe_sandbox):
    refund = file_and_submit(agent, stripe_sandbox, behavior="stay_pending")
    stripe_sandbox.settle(refund.connector_refund_id, "succeeded")
    execution.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED

    stripe_sandbox.settle(refund.connector_refund_id, "failed", failure_reason="lost_or_stolen_card")
    failed = next(e for e in sandbox_events(stripe_sandbox, refund.connector_refund_id) if e["type"] == "refund.failed")
    deliver(client, failed)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=failed["id"]).pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED and refund.error_code == "lost_or_stolen_card"


def test_dashboard_refund_on_a_known_payment_is_recorded(client, agent, api, stripe_sandbox):
    ours = file_and_submit(agent, stripe_sandbox, amount=2000)
    outside = stripe_sandbox.client().v1.refunds.create(
        params={"payment_intent": ours.connector_transaction_id, "amount": 5000}
    )
    event = next(e for e in sandbox_events(stripe_sandbox, outside.id) if e["type"] == "refund.created")

    deliver(client, event)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=event["id"]).pk)

    external = RefundRequest.objects.get(connector_refund_id=outside.id)
    assert (external.origin, external.status, external.amount_minor, external.requested_by) == (
        RefundOrigin.EXTERNAL, RefundStatus.SUCCEEDED, 5000, None,
    )
    assert external.payment == ours.payment
    ours.payment.refresh_from_db()
    assert ours.payment.amount_refunded_minor == 7000
    # The remainder is true: 10000 - 2000 - 5000.
    too_much = api(agent).post(
        "/api/refunds/",
        {"merchant_refund_id": "after-dash", "connector_transaction_id": ours.connector_transaction_id,
         "amount": {"minor_amount": 3001, "currency": "USD"}},
        format="json",
    )
    assert too_much.status_code == 422
    # Recording it twice changes nothing.
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=event["id"]).pk)
    assert RefundRequest.objects.filter(origin=RefundOrigin.EXTERNAL).count() == 1


def test_lost_create_answer_is_matched_by_merchant_refund_id(client, agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(10_000)
    refund, _ = intake.refund_request_create(
        merchant_refund_id="lost-answer", provider="stripe", connector_transaction_id=pi,
        amount=Money(1500, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)
    with pytest.raises(TransientProviderError) as lost:
        execution.refund_submit(refund_id=refund.pk)
    assert lost.value.retry_in is not None  # another attempt is due, not a final failure
    [at_stripe] = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data
    event = next(e for e in sandbox_events(stripe_sandbox, at_stripe.id) if e["type"] == "refund.created")

    deliver(client, event)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=event["id"]).pk)

    refund.refresh_from_db()
    assert refund.connector_refund_id == at_stripe.id and refund.status == RefundStatus.SUCCEEDED
    assert not RefundRequest.objects.filter(origin=RefundOrigin.EXTERNAL).exists()


def test_signed_bodies_that_are_no_event_are_400_and_change_nothing(client):
    for body in (b"[]", json.dumps({"type": "refund.updated", "data": {}}).encode(), b'"evt"'):
        response = client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_payload", body
    assert not WebhookEvent.objects.exists()


def test_the_adapter_tells_which_events_are_about_refunds_and_their_payments(agent, stripe_sandbox):
    refund = file_and_submit(agent, stripe_sandbox)
    created = next(e for e in sandbox_events(stripe_sandbox, refund.connector_refund_id) if e["type"] == "refund.created")
    adapter = get_provider("stripe")

    event = adapter.webhook_event(created)
    other = adapter.webhook_event({"id": "evt_x", "type": "customer.created", "data": {"object": {"id": "cus_1"}}})

    assert (event.event_id, event.type, event.is_refund_event) == (created["id"], "refund.created", True)
    assert refund.connector_transaction_id in event.transaction_ids
    assert (other.is_refund_event, other.transaction_ids) == (False, frozenset())


def test_providers_that_send_no_webhooks_or_are_not_enabled_answer_404(client, settings):
    robokassa = client.post("/webhooks/robokassa/", data=b"{}", content_type="application/json")
    settings.REFUND_PROVIDERS = ["robokassa"]
    disabled = client.post(URL, data=b"{}", content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(b"{}"))

    for response in (robokassa, disabled):
        assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_provider"
    assert not WebhookEvent.objects.exists()


def test_unconfigured_webhooks_answer_503(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = client.post(URL, data=b"{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=x")
    assert response.status_code == 503 and response.json()["error"]["code"] == "webhook_not_configured"
