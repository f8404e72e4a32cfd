"""The Stripe sandbox's extensions, through the real stripe SDK over HTTP."""

import concurrent.futures
import http.server
import os
import threading
import time
import uuid

import pytest
import requests
import stripe

from devtools.stripe_sandbox import BEHAVIOR_METADATA_KEY
from devtools.stripe_sandbox.control import SandboxError, launch

WEBHOOK_SECRET = "whsec_sandbox_test"
REFUND_EVENT_TYPES = {"refund.created", "charge.refunded", "refund.updated",
                      "charge.refund.updated", "refund.failed"}


def new_key():
    return f"test-{uuid.uuid4()}"


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.05)
    return value


def create_refund(client, idempotency_key=None, **params):
    return client.v1.refunds.create(
        params=params, options={"idempotency_key": idempotency_key or new_key()})


def refund_ids(client, **params):
    return [r.id for r in client.v1.refunds.list(params=params).data]


def charge_of(client, payment_intent):
    return client.v1.payment_intents.retrieve(
        payment_intent, params={"expand": ["latest_charge"]}).latest_charge


@pytest.fixture
def sandbox(stripe_sandbox_clean):
    return stripe_sandbox_clean


@pytest.fixture
def client(sandbox):
    return sandbox.client()


class WebhookReceiver:
    """A local HTTP endpoint that records (payload, Stripe-Signature)."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, self.headers["Stripe-Signature"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, object_ids=None):
        """Verified events (about object_ids, if given), in arrival order."""
        events = [stripe.Webhook.construct_event(payload, signature,
                                                 WEBHOOK_SECRET)
                  for payload, signature in list(self.received)]
        return [e for e in events
                if object_ids is None or e.data.object.id in object_ids]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


# Payments as the app reads them ---------------------------------------------

def test_payment_intent_and_charge_parse_through_sdk(sandbox, client):
    pi_id = sandbox.create_payment(1500, behavior="pending",
                                   metadata={"order": "A-1"})

    intent = client.v1.payment_intents.retrieve(
        pi_id, params={"expand": ["latest_charge"]})
    charge = intent.latest_charge
    assert intent.status == "succeeded" and intent.amount_received == 1500
    assert isinstance(charge, stripe.Charge)
    assert charge.id.startswith("ch_") and charge.payment_intent == pi_id
    assert (charge.amount, charge.amount_refunded, charge.refunded) \
        == (1500, 0, False)
    assert charge.metadata[BEHAVIOR_METADATA_KEY] == "pending"
    # Not expanded: an id, as at Stripe (localstripe sends the whole charge).
    assert client.v1.payment_intents.retrieve(pi_id).latest_charge == charge.id
    assert client.v1.charges.retrieve(charge.id).amount_captured == 1500


# Refund creation -----------------------------------------------------------

def test_full_refund_by_payment_intent(sandbox, client):
    pi_id = sandbox.create_payment(2000)

    refund = create_refund(client, payment_intent=pi_id,
                           reason="requested_by_customer",
                           metadata={"refund_request": "42"})

    assert refund.object == "refund" and refund.id.startswith("re_")
    assert (refund.status, refund.amount, refund.payment_intent) \
        == ("succeeded", 2000, pi_id)
    assert refund.metadata.to_dict() == {"refund_request": "42"}
    charge = client.v1.charges.retrieve(refund.charge)
    assert (charge.amount_refunded, charge.refunded) == (2000, True)
    assert refund_ids(client, payment_intent=pi_id) == [refund.id]
    assert client.v1.refunds.retrieve(refund.id).reason \
        == "requested_by_customer"


def test_partial_refunds_by_charge_until_fully_refunded(sandbox, client):
    charge_id = charge_of(client, sandbox.create_payment(1000)).id
    first = create_refund(client, charge=charge_id, amount=300)

    with pytest.raises(stripe.InvalidRequestError) as too_large:
        create_refund(client, charge=charge_id, amount=800)
    assert (too_large.value.http_status, too_large.value.code,
            too_large.value.param) == (400, "amount_too_large", "amount")
    assert too_large.value.user_message == (
        "Refund amount ($8.00) is greater than unrefunded amount on charge "
        "($7.00)")

    last = create_refund(client, charge=charge_id)  # the remaining 700
    assert last.amount == 700
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (1000, True)
    assert refund_ids(client, charge=charge_id) == [last.id, first.id]

    with pytest.raises(stripe.InvalidRequestError) as already:
        create_refund(client, charge=charge_id, amount=1)
    assert already.value.code == "charge_already_refunded"


@pytest.mark.parametrize("param, missing_id", [
    ("payment_intent", "pi_doesnotexist"), ("charge", "ch_doesnotexist")])
def test_refund_of_unknown_payment_is_404(client, param, missing_id):
    with pytest.raises(stripe.InvalidRequestError) as error:
        create_refund(client, **{param: missing_id})
    assert (error.value.http_status, error.value.code, error.value.param) \
        == (404, "resource_missing", param)


def test_unknown_refund_is_404(client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.retrieve("re_doesnotexist")
    assert (error.value.http_status, error.value.code) \
        == (404, "resource_missing")


def test_reason_must_be_one_of_stripes(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    for reason in ("duplicate", "fraudulent", "requested_by_customer"):
        assert create_refund(client, payment_intent=pi_id, amount=100,
                             reason=reason).reason == reason

    with pytest.raises(stripe.InvalidRequestError) as error:
        create_refund(client, payment_intent=pi_id, amount=100,
                      reason="changed_mind")
    assert (error.value.http_status, error.value.param) == (400, "reason")


@pytest.mark.parametrize("metadata", [
    {f"k{i}": "v" for i in range(51)},
    {"k" * 41: "v"},
    {"k": "v" * 501},
], ids=["51-keys", "41-char-key", "501-char-value"])
def test_metadata_beyond_stripe_limits_is_rejected(sandbox, client, metadata):
    pi_id = sandbox.create_payment(1000)
    with pytest.raises(stripe.InvalidRequestError) as error:
        create_refund(client, payment_intent=pi_id, metadata=metadata)
    assert error.value.http_status == 400
    assert error.value.param.startswith("metadata")
    assert refund_ids(client, payment_intent=pi_id) == []


def test_metadata_at_stripe_limits_is_kept(sandbox, client):
    metadata = {f"{i:02d}".ljust(40, "k"): "v" * 500 for i in range(50)}
    refund = create_refund(client, payment_intent=sandbox.create_payment(100),
                           metadata=metadata)
    assert client.v1.refunds.retrieve(refund.id).metadata.to_dict() \
        == metadata


def test_update_refund_metadata_merges(sandbox, client):
    refund = create_refund(client, payment_intent=sandbox.create_payment(100),
                           metadata={"a": "1", "b": "2"})
    updated = client.v1.refunds.update(
        refund.id, params={"metadata": {"b": "", "c": "3"}})
    assert updated.metadata.to_dict() == {"a": "1", "c": "3"}


# Idempotency ---------------------------------------------------------------

def test_same_key_same_params_replays_the_first_response(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    key = new_key()
    replays_before = sandbox.stats()["idempotent_replays"]

    first = create_refund(client, key, payment_intent=pi_id, amount=400)
    again = create_refund(client, key, payment_intent=pi_id, amount=400)

    assert again.id == first.id and again.to_dict() == first.to_dict()
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert sandbox.stats()["idempotent_replays"] == replays_before + 1
    assert refund_ids(client, payment_intent=pi_id) == [first.id]


def test_same_key_other_params_is_an_idempotency_error(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    key = new_key()
    create_refund(client, key, payment_intent=pi_id, amount=400)

    with pytest.raises(stripe.IdempotencyError) as error:
        create_refund(client, key, payment_intent=pi_id, amount=500)
    assert error.value.http_status == 400
    assert error.value.error.type == "idempotency_error"
    assert len(refund_ids(client, payment_intent=pi_id)) == 1


def test_concurrent_identical_requests_create_one_refund(sandbox):
    pi_id = sandbox.create_payment(1000)
    key = new_key()

    def attempt(_):
        return create_refund(sandbox.client(), key, payment_intent=pi_id).id

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(attempt, range(16)))

    assert len(ids) == 1
    assert refund_ids(sandbox.client(), payment_intent=pi_id) == list(ids)


# Refund lifecycle ------------------------------------------------------------

@pytest.mark.parametrize("behavior, initial, final, refunded_after", [
    ("pending", "pending", "succeeded", 600),
    ("fail", "pending", "failed", 0),
    ("cancel", "pending", "canceled", 0),
    ("requires_action", "requires_action", "succeeded", 600),
])
def test_refund_settles_after_settle_seconds(sandbox, client, behavior,
                                             initial, final, refunded_after):
    pi_id = sandbox.create_payment(1000, behavior=behavior)
    refund = create_refund(client, payment_intent=pi_id, amount=600)

    assert refund.status == initial
    if initial == "requires_action":
        assert refund.next_action.type == "display_details"
    # Pending refunds count as refunded, as at Stripe.
    assert client.v1.charges.retrieve(refund.charge).amount_refunded == 600

    settled = wait_for(lambda: (r := client.v1.refunds.retrieve(refund.id))
                       .status != initial and r,
                       timeout=sandbox.settle_seconds + 3)
    assert settled.status == final
    assert client.v1.charges.retrieve(refund.charge).amount_refunded \
        == refunded_after
    if final == "failed":
        assert settled.failure_reason == "expired_or_canceled_card"
        assert settled.failure_balance_transaction.startswith("txn_")


def test_stay_pending_until_settled_by_hand(sandbox, client):
    refund = create_refund(client, payment_intent=sandbox.create_payment(
        1000, behavior="stay_pending"))
    time.sleep(sandbox.settle_seconds + 0.3)
    assert client.v1.refunds.retrieve(refund.id).status == "pending"

    sandbox.settle(refund.id, "failed", failure_reason="insufficient_funds")

    failed = client.v1.refunds.retrieve(refund.id)
    assert (failed.status, failed.failure_reason) \
        == ("failed", "insufficient_funds")
    charge = client.v1.charges.retrieve(refund.charge)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    with pytest.raises(SandboxError):
        sandbox.settle(refund.id, "succeeded")  # failed is final


@pytest.mark.parametrize("payment_method, initial, final", [
    ("pm_card_pendingRefund", "pending", "succeeded"),    # 4000000000007726
    ("pm_card_refundFail", "succeeded", "failed"),        # 4000000000005126
])
def test_stripe_refund_test_cards(sandbox, client, payment_method, initial,
                                  final):
    pi_id = sandbox.create_payment(500, payment_method=payment_method)
    refund = create_refund(client, payment_intent=pi_id)
    assert refund.status == initial
    wait_for(lambda: client.v1.refunds.retrieve(refund.id).status == final,
             timeout=sandbox.settle_seconds + 3)


def test_only_requires_action_refunds_can_be_canceled(sandbox, client):
    waiting = create_refund(client, payment_intent=sandbox.create_payment(
        100, behavior="requires_action"))
    assert client.v1.refunds.cancel(waiting.id).status == "canceled"

    done = create_refund(client, payment_intent=sandbox.create_payment(100))
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.cancel(done.id)


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
