"""The Stripe sandbox's extensions, through the real stripe SDK over HTTP: payments, refunds,
idempotency and the refund lifecycle (events, faults, limits and persistence are in
test_stripe_sandbox_operations.py)."""

import concurrent.futures

import pytest
import stripe

from devtools.stripe_sandbox import BEHAVIOR_METADATA_KEY
from devtools.stripe_sandbox.control import SandboxError
from tests.sandbox.helpers import charge_of, create_refund, new_key, refund_ids, wait_for


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
    # A refund filed after it, that does settle: once it has, the settle time
    # has passed for ours too (a condition, not a nap).
    settling = create_refund(client, payment_intent=sandbox.create_payment(
        1000, behavior="pending"))
    wait_for(lambda: client.v1.refunds.retrieve(settling.id).status
             == "succeeded", timeout=sandbox.settle_seconds + 30)
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
