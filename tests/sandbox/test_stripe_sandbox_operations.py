"""The Stripe sandbox's operations, through the real stripe SDK over HTTP: events and webhooks,
faults, the rate limit, stats, auth, and private sandboxes (options, persistence, flushing)."""

import os

import pytest
import requests
import stripe

from devtools.stripe_sandbox.control import launch
from tests.sandbox.helpers import REFUND_EVENT_TYPES, WEBHOOK_SECRET, charge_of, create_refund, new_key, refund_ids, wait_for


# Events and webhooks ---------------------------------------------------------

def test_refund_events_are_signed_delivered_and_listed(sandbox, client,
                                                       receiver):
    sandbox.set_webhook(receiver.url, WEBHOOK_SECRET)
    try:
        refund = create_refund(client, payment_intent=sandbox.create_payment(
            800, behavior="fail"))
        ids = {refund.id, refund.charge}
        events = wait_for(
            lambda: {e.type for e in receiver.events(ids)} >= REFUND_EVENT_TYPES
            and receiver.events(ids),
            timeout=sandbox.settle_seconds + 5)
    finally:
        sandbox.remove_webhook()

    by_type = {e.type: e for e in events}
    assert by_type["refund.created"].data.object.status == "pending"
    assert by_type["refund.failed"].data.object.status == "failed"
    assert by_type["refund.updated"].data.previous_attributes.status \
        == "pending"
    assert by_type["charge.refunded"].data.object.amount_refunded == 800
    payload, signature = receiver.received[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, signature, "whsec_wrong")

    listed = client.v1.events.list(params={"type": "refund.failed"}).data
    assert listed[0].id == by_type["refund.failed"].id
    assert listed[0].data.object.id == refund.id


# Faults ----------------------------------------------------------------------

@pytest.mark.parametrize("status, error_class", [
    (500, stripe.APIError), (502, stripe.APIError), (503, stripe.APIError),
    (429, stripe.RateLimitError)])
def test_fault_status_answers_without_acting(sandbox, client, status,
                                             error_class):
    pi_id = sandbox.create_payment(1000)
    sandbox.set_faults(status, count=1, path_prefix="/v1/refunds",
                       methods=["POST"])
    key = new_key()

    with pytest.raises(error_class) as error:
        create_refund(client, key, payment_intent=pi_id)
    assert error.value.http_status == status
    if status == 429:
        assert error.value.error.code == "rate_limit"
    assert refund_ids(client, payment_intent=pi_id) == []  # GETs unaffected

    # The fault is used up: the retry with the same key goes through.
    assert create_refund(client, key, payment_intent=pi_id).status \
        == "succeeded"


def test_fault_after_acting_then_retry_replays(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    sandbox.set_faults(500, after=True, path_prefix="/v1/refunds",
                       methods=["POST"])
    key = new_key()

    with pytest.raises(stripe.APIError):
        create_refund(client, key, payment_intent=pi_id)
    created = refund_ids(client, payment_intent=pi_id)
    assert len(created) == 1  # the provider acted, the answer was lost

    retry = create_refund(client, key, payment_intent=pi_id)
    assert retry.id == created[0]
    assert retry.last_response.headers["Idempotent-Replayed"] == "true"


def test_fault_delay_times_the_client_out_but_still_acts(sandbox):
    pi_id = sandbox.create_payment(1000)
    sandbox.set_faults(delay_seconds=1.5, path_prefix="/v1/refunds",
                       methods=["POST"])
    key = new_key()

    with pytest.raises(stripe.APIConnectionError):
        create_refund(sandbox.client(timeout=0.5), key, payment_intent=pi_id)

    client = sandbox.client()
    created = wait_for(lambda: refund_ids(client, payment_intent=pi_id))
    assert create_refund(client, key, payment_intent=pi_id).id == created[0]


def test_fault_count_and_clear(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    sandbox.set_faults(503, count=2, path_prefix="/v1/payment_intents",
                       methods=["GET"])
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            client.v1.payment_intents.retrieve(pi_id)
    assert client.v1.payment_intents.retrieve(pi_id).id == pi_id

    sandbox.set_faults(500, count=None)
    sandbox.clear_faults()
    assert client.v1.payment_intents.retrieve(pi_id).id == pi_id


# Rate limit, stats, auth -----------------------------------------------------

def test_rate_limit_answers_429_beyond_the_rate(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    limited_before = sandbox.stats()["rate_limited"]
    sandbox.set_rate_limit(5)

    errors = []
    for _ in range(20):
        try:
            client.v1.payment_intents.retrieve(pi_id)
        except stripe.RateLimitError as error:
            errors.append(error)

    assert 5 <= len(errors) <= 15  # a burst of 5, then ~5/s
    assert errors[0].http_status == 429
    assert errors[0].error.code == "rate_limit"
    assert int(errors[0].headers["Retry-After"]) >= 1
    assert sandbox.stats()["rate_limited"] == limited_before + len(errors)

    sandbox.set_rate_limit(None)
    for _ in range(20):
        client.v1.payment_intents.retrieve(pi_id)


def test_stats_count_requests_by_route_and_status(sandbox, client):
    pi_id = sandbox.create_payment(1000)

    def counts():
        stats = sandbox.stats()
        route = stats["requests"].get("POST /v1/refunds", {})
        return (route.get("200", 0), route.get("400", 0),
                stats["refunds_created"])

    before = counts()
    create_refund(client, payment_intent=pi_id, amount=100)
    with pytest.raises(stripe.InvalidRequestError):
        create_refund(client, payment_intent=pi_id, amount=5000)
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_requests_without_a_secret_key_are_401(sandbox):
    response = requests.get(f"{sandbox.base_url}/v1/refunds", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"

    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient(
            api_key="pk_test_public", base_addresses={"api": sandbox.base_url},
            max_network_retries=0).v1.refunds.list()


# Private sandboxes: options, persistence, flushing ---------------------------

def test_webhook_flags_register_a_webhook(receiver):
    with launch("--webhook-url", receiver.url,
                "--webhook-secret", WEBHOOK_SECRET) as sandbox:
        pi_id = sandbox.create_payment(700)
        events = wait_for(receiver.events)
    assert [e.type for e in events] == ["payment_intent.succeeded"]
    assert events[0].data.object.id == pi_id


def test_state_file_keeps_data_and_keys_across_restarts(tmp_path):
    state_file = tmp_path / "sandbox.pickle"
    key = new_key()
    with launch("--state-file", str(state_file)) as sandbox:
        pi_id = sandbox.create_payment(1000)
        client = sandbox.client()
        first = create_refund(client, key, payment_intent=pi_id, amount=100)
        waiting = create_refund(client, payment_intent=sandbox.create_payment(
            100, behavior="stay_pending"))

    with launch("--state-file", str(state_file)) as sandbox:
        client = sandbox.client()
        assert client.v1.refunds.retrieve(first.id).amount == 100
        replay = create_refund(client, key, payment_intent=pi_id, amount=100)
        assert replay.id == first.id
        assert replay.last_response.headers["Idempotent-Replayed"] == "true"
        assert charge_of(client, pi_id).amount_refunded == 100
        assert sandbox.settle(waiting.id, "succeeded")["status"] \
            == "succeeded"


def test_flushing_data_also_forgets_refunds_and_keys():
    with launch() as sandbox:
        client = sandbox.client()
        key = new_key()
        refund = create_refund(client, key, payment_intent=sandbox.create_payment(
            1000), amount=100)

        sandbox.reset_data()

        with pytest.raises(stripe.InvalidRequestError):
            client.v1.refunds.retrieve(refund.id)
        assert sandbox.stats()["refunds_created"] == 0
        # The key is free again: other params are no idempotency error.
        other = create_refund(client, key,
                              payment_intent=sandbox.create_payment(500))
        assert other.amount == 500 and other.id != refund.id


def test_nothing_is_written_to_disk_by_default():
    localstripe_dump = "/tmp/localstripe.pickle"
    before = os.stat(localstripe_dump).st_mtime if os.path.exists(
        localstripe_dump) else None
    with launch() as sandbox:
        create_refund(sandbox.client(),
                      payment_intent=sandbox.create_payment(100))
    after = os.stat(localstripe_dump).st_mtime if os.path.exists(
        localstripe_dump) else None
    assert after == before
