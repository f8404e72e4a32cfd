"""Provider events at the edges the mutation run (tests/README.md) found untested: refunds made
in Stripe's dashboard recorded with every field a person reads, the event's own bookkeeping
(attempts, last error, processed), and events about other things."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from refunds.models import Payment, RefundOrigin, RefundRequest, RefundStatus, WebhookEvent
from refunds.money import Money
from refunds.providers.base import ProviderEvent, ProviderRefundStatus, RefundResult
from refunds.providers.stripe import StripeProvider
from refunds.services import execution, intake
from refunds.services.webhooks import payment_refunds_reconcile, webhook_event_process, webhook_event_receive
from tests import factories
from tests.refunds.test_webhooks import SECRET, URL, sandbox_events, sign

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def deliver(client, event: dict):
    payload = json.dumps(event).encode()
    return client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))


def ours_on(agent, stripe_sandbox, **payment):
    """Our 20.00 USD refund, sent, on a new 100.00 USD payment whose refunds stay pending."""
    pi = stripe_sandbox.create_payment(10_000, behavior="stay_pending", **payment)
    refund, _ = intake.refund_request_create(
        merchant_refund_id=f"ours-{pi}", provider="stripe", connector_transaction_id=pi,
        amount=Money(2000, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    execution.refund_submit(refund_id=refund.pk)
    return pi


def made_in_the_dashboard(stripe_sandbox, pi, amount):
    outside = stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": amount})
    created = next(e for e in sandbox_events(stripe_sandbox, outside.id) if e["type"] == "refund.created")
    return outside.id, created


def test_a_pending_refund_made_elsewhere_is_recorded_and_polled(client, agent, stripe_sandbox):
    pi = ours_on(agent, stripe_sandbox, metadata={"product": "Tea pot"})
    outside_id, created = made_in_the_dashboard(stripe_sandbox, pi, 3000)
    before = timezone.now()

    deliver(client, created)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=created["id"]).pk)

    external = RefundRequest.objects.get(connector_refund_id=outside_id)
    assert (external.origin, external.status, external.provider_status) == (
        RefundOrigin.EXTERNAL, RefundStatus.PROCESSING, "pending",
    )
    assert (external.merchant_refund_id, external.idempotency_key) == (f"ext-{outside_id}", f"external-{outside_id}")
    assert (external.amount_minor, external.currency, external.product) == (3000, "USD", "Tea pot")
    assert (external.provider, external.connector_transaction_id, external.payment.connector_transaction_id) == (
        "stripe", pi, pi,
    )
    assert (external.reason, external.payment_verified, external.resolved_at) == (
        "Refunded outside Refund Office", True, None,
    )
    assert (external.error_code, external.error_message) == ("", "")
    # Polled like one of ours: first after REFUND_POLL_FIRST_DELAY (5 s).
    assert before + timedelta(seconds=5) <= external.next_action_at <= timezone.now() + timedelta(seconds=5)
    [logged] = external.logs.all()
    assert (logged.event, logged.to_status, logged.actor, logged.message) == (
        "requested", "processing", None, f"{outside_id} was made outside Refund Office (stripe reports pending)",
    )


def test_a_failed_refund_made_elsewhere_keeps_the_reason_and_is_not_announced(
    client, agent, stripe_sandbox, settings, published_tasks, django_capture_on_commit_callbacks
):
    pi = ours_on(agent, stripe_sandbox)
    outside_id, created = made_in_the_dashboard(stripe_sandbox, pi, 3000)
    stripe_sandbox.settle(outside_id, "failed", failure_reason="expired_or_canceled_card")
    settings.SLACK_WEBHOOK_URL = "http://127.0.0.1:9/slack"
    deliver(client, created)

    with django_capture_on_commit_callbacks(execute=True):
        webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=created["id"]).pk)

    external = RefundRequest.objects.get(connector_refund_id=outside_id)
    assert (external.status, external.provider_status, external.error_code) == (
        RefundStatus.FAILED, "failed", "expired_or_canceled_card",
    )
    assert external.error_message and external.resolved_at is not None and external.next_action_at is None
    assert "refund_notify_slack_task" not in [name for name, _ in published_tasks]  # not ours to announce


def test_an_event_that_cannot_be_processed_keeps_its_error_until_it_can(
    client, agent, stripe_sandbox, stripe_sandbox_clean
):
    pi = ours_on(agent, stripe_sandbox)
    outside_id, created = made_in_the_dashboard(stripe_sandbox, pi, 3000)
    deliver(client, created)
    event = WebhookEvent.objects.get(event_id=created["id"])
    stripe_sandbox.set_faults(status=503, count=5, path_prefix="/v1/refunds", methods=["GET"])

    with pytest.raises(execution.TransientProviderError) as failed:
        webhook_event_process(event_pk=event.pk)

    event.refresh_from_db()
    assert (event.attempts, event.processed_at, event.last_error) == (1, None, str(failed.value)[:500])
    assert event.last_error
    assert not RefundRequest.objects.filter(connector_refund_id=outside_id).exists()

    stripe_sandbox.clear_faults()
    webhook_event_process(event_pk=event.pk)
    event.refresh_from_db()
    assert (event.attempts, event.last_error) == (2, "") and event.processed_at is not None
    assert RefundRequest.objects.filter(connector_refund_id=outside_id).exists()

    requests = stripe_sandbox.stats()["requests"]
    webhook_event_process(event_pk=event.pk)  # processed already: nothing is asked again
    event.refresh_from_db()
    assert (event.attempts, stripe_sandbox.stats()["requests"]) == (2, requests)


def test_events_about_other_things_are_kept_as_processed_and_queue_nothing(
    client, published_tasks, django_capture_on_commit_callbacks
):
    # The longest id and type the event's columns hold (longer ones are refused before storing:
    # tests/hostile).
    event = {"id": "evt_" + "x" * 251, "type": "customer." + "y" * 91, "data": {"object": {"id": "cus_1"}}}

    other = {"id": "evt_other", "type": "customer.created", "data": {"object": {"id": "cus_2"}}}
    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(client, event)
        deliver(client, other)
        again = deliver(client, event)
        too_long = deliver(client, {**event, "id": event["id"] + "z"})

    assert (first.status_code, first.json()["duplicate"], again.json()["duplicate"]) == (200, False, True)
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "invalid_payload")
    stored = WebhookEvent.objects.get(event_id=event["id"])
    assert (stored.provider, stored.event_id, stored.type) == ("stripe", event["id"], event["type"])
    assert stored.processed_at is not None
    assert published_tasks == []


def test_a_refund_made_elsewhere_follows_its_later_events(client, agent, stripe_sandbox):
    pi = ours_on(agent, stripe_sandbox)
    outside_id, created = made_in_the_dashboard(stripe_sandbox, pi, 3000)
    deliver(client, created)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=created["id"]).pk)

    stripe_sandbox.settle(outside_id, "succeeded")
    updated = next(e for e in sandbox_events(stripe_sandbox, outside_id) if e["type"] == "refund.updated")
    deliver(client, updated)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=updated["id"]).pk)

    external = RefundRequest.objects.get(connector_refund_id=outside_id)
    assert (external.status, external.provider_status) == (RefundStatus.SUCCEEDED, "succeeded")
    assert RefundRequest.objects.filter(origin=RefundOrigin.EXTERNAL).count() == 1


def test_a_lost_answer_is_matched_to_its_own_refund_and_the_others_are_left_alone(
    client, agent, stripe_sandbox, stripe_sandbox_clean
):
    pi = stripe_sandbox.create_payment(10_000, behavior="stay_pending")
    lost_one, _ = intake.refund_request_create(
        merchant_refund_id=f"lost-{pi}", provider="stripe", connector_transaction_id=pi,
        amount=Money(1500, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)
    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=lost_one.pk)
    [lost] = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data
    later, _ = intake.refund_request_create(  # filed and answered after it
        merchant_refund_id=f"later-{pi}", provider="stripe", connector_transaction_id=pi,
        amount=Money(2000, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    execution.refund_submit(refund_id=later.pk)
    later.refresh_from_db()
    created = next(e for e in sandbox_events(stripe_sandbox, lost.id) if e["type"] == "refund.created")
    logged_before = later.logs.count()

    deliver(client, created)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=created["id"]).pk)

    lost_one.refresh_from_db()
    assert (lost_one.connector_refund_id, lost_one.status) == (lost.id, RefundStatus.PROCESSING)
    answered = later.connector_refund_id
    later.refresh_from_db()
    assert later.connector_refund_id == answered != lost.id
    assert later.logs.count() == logged_before  # unchanged at Stripe: nothing recorded again
    assert not RefundRequest.objects.filter(origin=RefundOrigin.EXTERNAL).exists()


def test_a_refund_made_elsewhere_with_over_long_fields_is_cut_to_its_columns(agent, stripe_sandbox, monkeypatch):
    """A connector may name a refund and its failure at any length; the record keeps what fits
    its columns (SQLite keeps longer strings, PostgreSQL refuses them and nothing is recorded)."""
    pi = ours_on(agent, stripe_sandbox)
    long_id, code, message = "re_" + "7" * 97, "c" * 70, "m" * 600
    listed = StripeProvider.list_refunds

    def with_one_more(self, *, connector_transaction_id):
        return [*listed(self, connector_transaction_id=connector_transaction_id), RefundResult(
            connector_refund_id=long_id, status=ProviderRefundStatus.FAILED, amount=Money(1500, "USD"),
            failure_code=code, failure_message=message,
        )]

    monkeypatch.setattr(StripeProvider, "list_refunds", with_one_more)

    payment_refunds_reconcile(payment_id=Payment.objects.get(connector_transaction_id=pi).pk)

    external = RefundRequest.objects.get(connector_refund_id=long_id)
    assert (external.merchant_refund_id, external.idempotency_key) == (f"ext-{long_id}"[:64], f"external-{long_id}"[:80])
    assert (len(external.merchant_refund_id), len(external.idempotency_key)) == (64, 80)
    assert (external.error_code, external.error_message) == (code[:64], message[:500])
    assert (external.status, external.request_fingerprint) == (RefundStatus.FAILED, "")


def test_a_refund_elsewhere_naming_our_id_from_another_payment_is_recorded_as_made_elsewhere(agent, stripe_sandbox):
    """Stripe's metadata says whose a refund is only on its own payment: a refund made in the
    dashboard on payment B that carries the merchant_refund_id of our refund on payment A (copied
    metadata) is B's refund made elsewhere; our refund on A keeps its Stripe refund."""
    pi_a = ours_on(agent, stripe_sandbox)
    ours = RefundRequest.objects.get(merchant_refund_id=f"ours-{pi_a}")
    pi_b = ours_on(agent, stripe_sandbox)
    outside = stripe_sandbox.client().v1.refunds.create(
        params={"payment_intent": pi_b, "amount": 1000, "metadata": {"merchant_refund_id": ours.merchant_refund_id}}
    )
    before = (ours.connector_refund_id, ours.status, ours.provider_status, ours.logs.count())

    payment_refunds_reconcile(payment_id=Payment.objects.get(connector_transaction_id=pi_b).pk)

    ours.refresh_from_db()
    assert (ours.connector_refund_id, ours.status, ours.provider_status, ours.logs.count()) == before
    external = RefundRequest.objects.get(connector_refund_id=outside.id)
    assert (external.origin, external.connector_transaction_id, external.amount_minor) == (
        RefundOrigin.EXTERNAL, pi_b, 1000,
    )


def test_a_refund_is_matched_under_its_own_provider_only(agent, stripe_sandbox):
    """Prism's Stripe connector names Stripe's refunds alike (re_...): a refund recorded through
    it is not Stripe's refund of the same id, and reconciling the Stripe payment leaves it alone."""
    pi = ours_on(agent, stripe_sandbox)
    ours = RefundRequest.objects.get(merchant_refund_id=f"ours-{pi}")
    through_prism = factories.RefundFactory(
        payment=factories.PaymentFactory(provider="prism_stripe", connector_transaction_id=pi),
        connector_refund_id=ours.connector_refund_id, status=RefundStatus.PROCESSING, provider_status="requires_action",
    )
    stripe_sandbox.settle(ours.connector_refund_id, "succeeded")

    payment_refunds_reconcile(payment_id=ours.payment_id)

    ours.refresh_from_db()
    through_prism.refresh_from_db()
    assert (ours.status, ours.provider_status) == (RefundStatus.SUCCEEDED, "succeeded")
    assert (through_prism.status, through_prism.provider_status) == (RefundStatus.PROCESSING, "requires_action")
    assert not through_prism.logs.exists()


def test_an_event_naming_only_the_charge_reaches_the_payment_known_by_its_payment_intent(
    client, agent, stripe_sandbox
):
    """A refund of a charge made without a PaymentIntent in Stripe's payload (payment_intent
    null) names only the charge: the payment we know by its PaymentIntent is found by its alias."""
    pi = ours_on(agent, stripe_sandbox)
    outside_id, created = made_in_the_dashboard(stripe_sandbox, pi, 3000)
    refund_object = created["data"]["object"]
    assert refund_object["charge"], "the sandbox's refund names its charge"
    refund_object["payment_intent"] = None

    deliver(client, created)
    webhook_event_process(event_pk=WebhookEvent.objects.get(event_id=created["id"]).pk)

    external = RefundRequest.objects.get(connector_refund_id=outside_id)
    assert (external.origin, external.connector_transaction_id, external.amount_minor) == (
        RefundOrigin.EXTERNAL, pi, 3000,
    )


def test_the_same_event_id_from_another_provider_is_another_event(client, agent, stripe_sandbox):
    """Event ids are unique per provider only: a replay of a Stripe event is answered as a
    duplicate even when another provider once sent an event of the same id."""
    pi = ours_on(agent, stripe_sandbox)
    _, created = made_in_the_dashboard(stripe_sandbox, pi, 3000)
    WebhookEvent.objects.create(provider="prism_stripe", event_id=created["id"], type="refund.created", payload={})

    first, replay = deliver(client, created), deliver(client, created)

    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (replay.status_code, replay.json()["duplicate"]) == (200, True)
    assert WebhookEvent.objects.filter(event_id=created["id"]).count() == 2


def test_an_event_with_an_over_long_id_and_type_is_kept_cut_to_its_columns():
    """Stripe's adapter refuses such an event (400); any other adapter's is stored cut to the
    columns (PostgreSQL would refuse the row), and its replay is still recognised."""
    event = ProviderEvent(event_id="evt_" + "9" * 296, type="refund." + "u" * 143, payload={"id": "long"})

    (stored, created), (again, created_again) = (
        webhook_event_receive(provider="stripe", event=event), webhook_event_receive(provider="stripe", event=event)
    )

    assert (created, created_again, again.pk) == (True, False, stored.pk)
    stored.refresh_from_db()
    assert (stored.event_id, stored.type) == (event.event_id[:255], event.type[:100])
    assert (len(stored.event_id), len(stored.type)) == (255, 100)
    assert stored.processed_at is not None  # about nothing we act on: kept as processed


def test_an_over_long_error_is_kept_cut_to_its_column(client, agent, stripe_sandbox, monkeypatch):
    pi = ours_on(agent, stripe_sandbox)
    _, created = made_in_the_dashboard(stripe_sandbox, pi, 3000)
    deliver(client, created)
    event = WebhookEvent.objects.get(event_id=created["id"])

    def unreachable(self, *, connector_transaction_id):
        raise execution.TransientProviderError("Stripe said: " + "z" * 700)

    monkeypatch.setattr(StripeProvider, "list_refunds", unreachable)
    with pytest.raises(execution.TransientProviderError):
        webhook_event_process(event_pk=event.pk)

    event.refresh_from_db()
    assert event.last_error == ("Stripe said: " + "z" * 700)[:500] and len(event.last_error) == 500
    assert (event.attempts, event.processed_at) == (1, None)
