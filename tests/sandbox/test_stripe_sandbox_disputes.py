"""The Stripe sandbox's disputes, through the real stripe SDK over HTTP: a chargeback opened
from the test side, its signed events, Stripe's charge_disputed refusal while it holds the
charge, closing it won or lost; the Charge's shape (disputed, billing_details, no embedded
refunds) as Stripe's published fixtures have it."""

import pytest
import stripe

from devtools.stripe_sandbox.control import SandboxError
from tests.sandbox.helpers import WEBHOOK_SECRET, charge_of, create_refund, wait_for

DISPUTE_EVENTS = {"charge.dispute.created", "charge.dispute.funds_withdrawn"}


def test_a_chargeback_is_listed_refuses_refunds_and_sends_its_events(sandbox, client, receiver):
    sandbox.set_webhook(receiver.url, WEBHOOK_SECRET)
    try:
        pi = sandbox.create_payment(5_000)
        charge = charge_of(client, pi)
        assert charge.disputed is False

        dispute = sandbox.open_dispute(pi, amount=4_000, reason="fraudulent")
        events = wait_for(lambda: {e.type for e in receiver.events({dispute["id"]})} >= DISPUTE_EVENTS
                          and receiver.events({dispute["id"]}))
    finally:
        sandbox.remove_webhook()

    assert dispute["id"].startswith("dp_") and dispute["object"] == "dispute"
    assert (dispute["charge"], dispute["payment_intent"], dispute["amount"], dispute["currency"]) == (
        charge.id, pi, 4_000, "usd")
    assert (dispute["status"], dispute["reason"], dispute["is_charge_refundable"]) == (
        "needs_response", "fraudulent", False)
    for event in events:
        stripe.Webhook.construct_event(*next((p, s) for p, s in receiver.received if event.id.encode() in p),
                                       WEBHOOK_SECRET)
    assert client.v1.charges.retrieve(charge.id).disputed is True
    listed = client.v1.disputes.list(params={"payment_intent": pi}).data
    assert [d.id for d in listed] == [dispute["id"]]
    assert [d.id for d in client.v1.disputes.list(params={"charge": charge.id}).data] == [dispute["id"]]
    assert client.v1.disputes.retrieve(dispute["id"]).status == "needs_response"

    with pytest.raises(stripe.InvalidRequestError) as refused:
        create_refund(client, payment_intent=pi, amount=100)
    assert (refused.value.http_status, refused.value.code) == (400, "charge_disputed")
    assert refused.value.user_message.startswith("The charge you’re attempting to refund has been charged back.")
    assert client.v1.refunds.list(params={"payment_intent": pi}).data == []


@pytest.mark.parametrize("outcome, refundable", [("won", True), ("lost", False)])
def test_closing_a_chargeback_won_or_lost(sandbox, client, outcome, refundable):
    pi = sandbox.create_payment(5_000)
    dispute = sandbox.open_dispute(pi)

    closed = sandbox.close_dispute(dispute["id"], outcome)

    assert (closed["status"], closed["is_charge_refundable"]) == (outcome, refundable)
    types = [e.type for e in client.v1.events.list(params={"type": "charge.dispute.*"}).data
             if e.data.object.id == dispute["id"]]
    assert "charge.dispute.closed" in types
    assert ("charge.dispute.funds_reinstated" in types) is (outcome == "won")
    assert charge_of(client, pi).disputed is True  # Stripe keeps it: the charge was disputed
    if refundable:
        assert create_refund(client, payment_intent=pi, amount=100).status == "succeeded"
    else:
        with pytest.raises(stripe.InvalidRequestError, match="charged back"):
            create_refund(client, payment_intent=pi, amount=100)
    with pytest.raises(SandboxError, match="already closed"):
        sandbox.close_dispute(dispute["id"], "won")


def test_an_inquiry_leaves_the_charge_refundable(sandbox, client):
    pi = sandbox.create_payment(5_000)
    inquiry = sandbox.open_dispute(pi, inquiry=True)
    assert (inquiry["status"], inquiry["is_charge_refundable"]) == ("warning_needs_response", True)
    assert create_refund(client, payment_intent=pi, amount=100).status == "succeeded"
    assert sandbox.close_dispute(inquiry["id"], "won")["status"] == "warning_closed"


def test_dispute_requests_that_make_no_sense_are_refused(sandbox, client):
    pi = sandbox.create_payment(5_000)
    with pytest.raises(SandboxError, match="No such payment_intent"):
        sandbox.open_dispute("pi_missing")
    with pytest.raises(SandboxError, match="at most the charge"):
        sandbox.open_dispute(pi, amount=6_000)
    with pytest.raises(SandboxError, match="Invalid reason"):
        sandbox.open_dispute(pi, reason="because")
    sandbox.open_dispute(pi)
    with pytest.raises(SandboxError, match="already has an open dispute"):
        sandbox.open_dispute(pi)
    with pytest.raises(SandboxError, match="won or lost"):
        sandbox.close_dispute(client.v1.disputes.list().data[0].id, "maybe")
    with pytest.raises(stripe.InvalidRequestError, match="No such dispute"):
        client.v1.disputes.retrieve("dp_missing")


def test_a_charge_has_stripes_required_fields_and_no_embedded_refunds(sandbox, client):
    pi = sandbox.create_payment(5_000)
    create_refund(client, payment_intent=pi, amount=100)
    charge = charge_of(client, pi).to_dict()

    assert charge["disputed"] is False
    assert set(charge["billing_details"]) == {"address", "email", "name", "phone", "tax_id"}
    assert set(charge["billing_details"]["address"]) == {"city", "country", "line1", "line2", "postal_code", "state"}
    assert "refunds" not in charge  # gone from the Charge since API version 2022-11-15
    expanded = client.v1.charges.retrieve(charge["id"], params={"expand": ["refunds"]})
    assert [r.amount for r in expanded.refunds.data] == [100]
