"""Filing a refund, at the edges the mutation run (tests/README.md) found untested: what the
"requested" log row says, the last minor unit of a payment, the threshold itself, which parts of
a request make it a different request, the messages a caller reads, and a lost race on the
merchant_refund_id."""

import pytest

from refunds import errors
from refunds.models import RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.robokassa import RobokassaProvider
from refunds.services import intake
from tests import factories
from tests.api.test_intake import body as intake_body

pytestmark = pytest.mark.django_db


def body(pi, **overrides):
    """test_intake's request body, with this module's merchant_refund_id."""
    return intake_body(pi, **{"merchant_refund_id": f"edge-{pi}", **overrides})


def test_the_request_is_logged_with_its_amount_payment_and_verification(api, agent, stripe_sandbox,
                                                                         stripe_sandbox_clean):
    verified_pi = stripe_sandbox.create_payment(10_000)
    unverified_pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    client.post("/api/refunds/", body(verified_pi), format="json")
    stripe_sandbox.set_faults(status=503, count=5, path_prefix="/v1/payment_intents", methods=["GET"])
    client.post("/api/refunds/", body(unverified_pi, amount={"minor_amount": 123_456, "currency": "USD"}),
                format="json")

    for pi, text, verified in ((verified_pi, "25.00 USD", True), (unverified_pi, "1,234.56 USD", False)):
        refund = RefundRequest.objects.get(connector_transaction_id=pi)
        requested = refund.logs.order_by("pk").first()
        assert (requested.event, requested.actor, requested.message, requested.data) == (
            "requested", agent, f"Requested {text} on {pi}", {"payment_verified": verified},
        )
        assert refund.idempotency_key.startswith("refundoffice-") and len(refund.idempotency_key) == 45
    keys = set(RefundRequest.objects.values_list("idempotency_key", flat=True))
    assert len(keys) == 2


def test_an_amount_at_the_threshold_is_approved_without_a_person(api, agent, stripe_sandbox, settings):
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 3000}
    pi = stripe_sandbox.create_payment(10_000)

    response = api(agent).post("/api/refunds/", body(pi, amount={"minor_amount": 3000, "currency": "USD"}),
                               format="json")

    assert (response.status_code, response.json()["status"]) == (201, "approved")


def test_a_full_refund_takes_the_last_minor_unit(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": 9_999})

    response = api(agent).post("/api/refunds/", body(pi, amount=None), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["amount"] == {"minor_amount": 1, "currency": "USD"}


@pytest.mark.parametrize("refunded_at_stripe", [10_000, 9_000])
def test_a_full_refund_of_a_spent_payment_is_422(api, agent, stripe_sandbox, refunded_at_stripe):
    """Nothing left, or less than nothing once our own unsent 20.00 is counted."""
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    if refunded_at_stripe < 10_000:
        ours = client.post("/api/refunds/", body(pi, merchant_refund_id="ours",
                                                 amount={"minor_amount": 2_000, "currency": "USD"}), format="json")
        assert ours.status_code == 201
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": refunded_at_stripe})

    response = client.post("/api/refunds/", body(pi, amount=None), format="json")

    assert response.status_code == 422, response.json()
    assert response.json()["error"] == {
        "code": "amount_exceeds_refundable", "message": "Nothing remains refundable on this payment.", "field": "amount",
    }
    assert not RefundRequest.objects.filter(merchant_refund_id=f"edge-{pi}").exists()


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "Another reason"},
        {"metadata": {"ticket": "ZD-2002"}},
        {"product": "Red mug"},
        {"reason_code": "duplicate_charge"},
        {"amount": None},
    ],
)
def test_the_same_id_with_any_other_field_changed_is_a_conflict(api, agent, stripe_sandbox, change):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    first = client.post("/api/refunds/", body(pi), format="json")

    again = client.post("/api/refunds/", body(pi, **change), format="json")

    assert first.status_code == 201
    assert again.status_code == 409, again.json()
    assert again.json()["error"] == {
        "code": "idempotency_conflict",
        "message": f"merchant_refund_id 'edge-{pi}' was already used for a different request.",
        "field": "merchant_refund_id",
    }


def test_the_same_body_from_another_person_is_a_conflict(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    api(agent).post("/api/refunds/", body(pi), format="json")

    other = api(factories.agent(username="agent2")).post("/api/refunds/", body(pi), format="json")

    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    assert RefundRequest.objects.get().requested_by == agent


def test_the_same_reason_code_replays(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    first = client.post("/api/refunds/", body(pi, reason_code="duplicate_charge"), format="json")

    again = client.post("/api/refunds/", body(pi, reason_code="duplicate_charge"), format="json")

    assert (first.status_code, again.status_code) == (201, 200)


def test_what_the_provider_said_is_in_the_message(api, agent, stripe_sandbox, stripe_sandbox_clean):
    client = api(agent)
    unknown = client.post("/api/refunds/", body("pi_doesnotexist123"), format="json")
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.set_faults(status=503, count=5, path_prefix="/v1/payment_intents", methods=["GET"])
    unreachable = client.post("/api/refunds/", body(pi, amount=None), format="json")

    assert unknown.json()["error"] == {
        "code": "transaction_not_found",
        "message": "stripe knows no transaction 'pi_doesnotexist123' (resource_missing).",
        "field": "connector_transaction_id",
    }
    assert unreachable.json()["error"] == {
        "code": "provider_unavailable",
        "message": "stripe cannot be reached to look up the payment's amount; give an amount or retry later.",
        "field": "amount",
    }


def file(agent, pi, *, amount=2500, reason="Customer returned the item"):
    return intake.refund_request_create(
        merchant_refund_id="raced", provider="stripe", connector_transaction_id=pi, amount=Money(amount, "USD"),
        reason=reason, metadata={}, product="", requested_by=agent,
    )


@pytest.mark.parametrize("same_body", [True, False])
def test_a_request_that_loses_the_race_for_its_id_replays_or_conflicts(agent, stripe_sandbox, monkeypatch, same_body):
    """Another request with the same merchant_refund_id is filed while this one asks Stripe."""
    pi = stripe_sandbox.create_payment(10_000)
    real_lookup = intake._payment_info_or_unverified
    winner = {}

    def lookup_while_another_files(**kwargs):
        monkeypatch.setattr(intake, "_payment_info_or_unverified", real_lookup)
        winner["refund"], _ = file(agent, pi, amount=2500 if same_body else 2600)
        return real_lookup(**kwargs)

    monkeypatch.setattr(intake, "_payment_info_or_unverified", lookup_while_another_files)

    if same_body:
        refund, created = file(agent, pi)
        assert (refund, created) == (winner["refund"], False)
    else:
        with pytest.raises(intake.errors.IdempotencyConflict):
            file(agent, pi)
    assert RefundRequest.objects.get().status == RefundStatus.APPROVED


def test_a_payment_accepted_unverified_is_logged_for_the_operator(api, agent, stripe_sandbox, stripe_sandbox_clean,
                                                                   caplog):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.set_faults(status=503, count=5, path_prefix="/v1/payment_intents", methods=["GET"])

    with caplog.at_level("WARNING", logger="refunds.services.intake"):
        api(agent).post("/api/refunds/", body(pi), format="json")

    assert f"payment lookup failed for stripe {pi}; accepting unverified" in caplog.messages


ITEM = {"name": "Teapot", "quantity": 1, "cost": {"minor_amount": 1_500, "currency": "RUB"}}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"provider": "stripe", "connector_transaction_id": "pi_123456789"}, "stripe refunds have no invoice items."),
        ({"items": [{**ITEM, "tax": "vat10"}, {**ITEM, "tax": "vat99"}]},
         f"robokassa knows no tax rate 'vat99' ({', '.join(RobokassaProvider.item_tax_rates)})."),
        ({"items": [ITEM], "amount": {"minor_amount": 1_400, "currency": "RUB"}},
         "The items add up to 15.00 RUB, not the amount 14.00 RUB."),
        ({"items": [{**ITEM, "cost": {"minor_amount": 1_500, "currency": "USD"}}, ITEM]},
         "Every item's cost must be in USD."),
    ],
)
def test_items_that_cannot_be_refunded_say_why(api, agent, robokassa_sandbox, fields, message):
    invoice_id = robokassa_sandbox.create_payment(10_000)
    data = {"merchant_refund_id": f"items-{invoice_id}", "provider": "robokassa", "connector_transaction_id": invoice_id,
            "items": [ITEM], **fields}

    response = api(agent).post("/api/refunds/", data, format="json")

    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["field"], response.json()["error"]["message"]) == ("items", message)
    assert not RefundRequest.objects.exists()


def test_items_without_an_amount_are_the_amount(api, agent, robokassa_sandbox):
    invoice_id = robokassa_sandbox.create_payment(10_000)

    response = api(agent).post("/api/refunds/", {
        "merchant_refund_id": "one-item", "provider": "robokassa", "connector_transaction_id": invoice_id,
        "items": [{**ITEM, "quantity": 2}],
    }, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["amount"] == {"minor_amount": 3_000, "currency": "RUB"}


def test_a_replay_with_its_metadata_in_another_order_is_the_same_request(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    first = client.post("/api/refunds/", body(pi, metadata={"ticket": "ZD-1", "channel": "chat"}), format="json")

    again = client.post("/api/refunds/", body(pi, metadata={"channel": "chat", "ticket": "ZD-1"}), format="json")

    assert (first.status_code, again.status_code) == (201, 200)


def test_another_reason_code_or_other_items_is_another_request(api, agent, stripe_sandbox, robokassa_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    client.post("/api/refunds/", body(pi, reason_code="duplicate_charge"), format="json")
    invoice_id = robokassa_sandbox.create_payment(10_000)
    by_items = {"merchant_refund_id": "by-items", "provider": "robokassa", "connector_transaction_id": invoice_id}
    client.post("/api/refunds/", {**by_items, "items": [{**ITEM, "quantity": 2}]}, format="json")

    other_code = client.post("/api/refunds/", body(pi, reason_code="goodwill"), format="json")
    other_items = client.post("/api/refunds/", {**by_items, "items": [{**ITEM, "name": "Cup"}, ITEM]}, format="json")

    assert (other_code.status_code, other_items.status_code) == (409, 409)


def test_a_second_refund_filed_while_stripe_is_down_counts_against_the_known_payment(
    api, agent, stripe_sandbox, stripe_sandbox_clean
):
    """The payment is known from the first refund; with Stripe unreachable the second is accepted
    unverified on the same row (read again under its lock: on PostgreSQL the lock names the row
    itself), and the refundable remainder still counts the first."""
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    first = client.post("/api/refunds/", body(pi, merchant_refund_id="known-1",
                                               amount={"minor_amount": 6_000, "currency": "USD"}), format="json")
    assert first.status_code == 201, first.json()
    stripe_sandbox.set_faults(status=503, count=10, path_prefix="/v1/payment_intents", methods=["GET"])

    second = client.post("/api/refunds/", body(pi, merchant_refund_id="known-2",
                                                amount={"minor_amount": 3_000, "currency": "USD"}), format="json")
    too_much = client.post("/api/refunds/", body(pi, merchant_refund_id="known-3",
                                                  amount={"minor_amount": 2_000, "currency": "USD"}), format="json")

    assert second.status_code == 201, second.json()
    refunds = {r.merchant_refund_id: r for r in RefundRequest.objects.all()}
    assert refunds["known-2"].payment_id == refunds["known-1"].payment_id
    assert not refunds["known-2"].payment_verified
    assert too_much.status_code == 422 and "known-3" not in refunds  # 60 + 30 + 20 > 100.00 USD


def test_a_caller_that_gives_no_override_reason_is_refused_on_a_disputed_payment(manager, stripe_sandbox):
    """A CSV batch row (and any caller that does not pass dispute_override_reason) on a payment with
    an open dispute is refused, whoever files it: an override is only ever a reason someone typed."""
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.open_dispute(pi)

    with pytest.raises(errors.PaymentDisputed):
        intake.refund_request_create(
            merchant_refund_id="no-override", provider="stripe", connector_transaction_id=pi,
            amount=Money(1_000, "USD"), reason="", metadata={}, product="", requested_by=manager,
        )

    assert not RefundRequest.objects.filter(merchant_refund_id="no-override").exists()


def test_the_same_id_on_another_payment_or_provider_is_a_conflict(api, agent, stripe_sandbox, settings):
    """The payment and the provider are part of the request: the same merchant_refund_id filed on
    another payment, or on the same pi_ id through Prism's Stripe connector, is not a replay."""
    settings.REFUND_PROVIDERS = [*settings.REFUND_PROVIDERS, "prism_stripe"]
    pi, other = stripe_sandbox.create_payment(10_000), stripe_sandbox.create_payment(10_000)
    client = api(agent)
    assert client.post("/api/refunds/", body(pi), format="json").status_code == 201

    elsewhere = client.post("/api/refunds/", body(pi, connector_transaction_id=other), format="json")
    other_provider = client.post("/api/refunds/", body(pi, provider="prism_stripe"), format="json")

    for again in (elsewhere, other_provider):
        assert again.status_code == 409, again.json()
        assert again.json()["error"]["code"] == "idempotency_conflict"
    assert RefundRequest.objects.get().connector_transaction_id == pi


def test_the_product_typed_wins_over_the_payments_and_the_payments_fills_in(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000, metadata={"product": "Desk lamp"})
    client = api(agent)

    typed = client.post("/api/refunds/", body(pi, merchant_refund_id="typed", product="Blue mug"), format="json")
    untyped = client.post("/api/refunds/", body(pi, merchant_refund_id="untyped", product=""), format="json")

    assert (typed.json()["product"], untyped.json()["product"]) == ("Blue mug", "Desk lamp")


def test_a_request_s_fingerprint_stays_what_earlier_versions_stored():
    """Fingerprints are stored with each refund and compared when the same merchant_refund_id
    comes again, maybe after a deploy: a request must hash as it always has (the keys named
    inside the hash included), or a retry of an old request would be a 409 instead of a replay.
    Pinned values for a request without and with the optional parts (items, reason code,
    dispute override)."""
    from refunds.providers.base import LineItem
    from refunds.services.intake import _request_fingerprint

    base = dict(provider="robokassa", connector_transaction_id="100", amount=Money(1500, "RUB"), reason="Broken",
                metadata={"ticket": "ZD-1"}, product="Kettle", requested_by=7)
    items = [LineItem(name="Kettle", quantity=1, cost=Money(1500, "RUB"), tax="vat20")]

    assert _request_fingerprint(items=[], reason_code="", **base) == (
        "f0b10fc8373c85a7841f07b17d848f33b1d37ea21ebe01e74d5a1d8c7c57b471"
    )
    assert _request_fingerprint(
        items=items, reason_code="product_return", dispute_override_reason="Agreed", **base
    ) == "780f8b5c49bd78481cd9859416907f864cc42daa7e2d7819c645246e46e7e27f"


def test_a_lookup_waits_for_stripe_s_own_rate_and_files_unverified_when_it_is_fully_booked(
    api, agent, stripe_sandbox, settings
):
    """Intake's payment lookup books a slot of Stripe's rate like every other call: with this
    window taken (and no wait allowed), Stripe is asked nothing and the refund is accepted
    unverified, to be checked before anything is executed."""
    from tests.refunds.test_claim_edges import fully_booked

    pi = stripe_sandbox.create_payment(10_000)
    settings.PROVIDER_RATE_MAX_WAIT_INTAKE_SECONDS = 0
    fully_booked(settings)
    requests = stripe_sandbox.stats()["requests"]

    response = api(agent).post("/api/refunds/", intake_body(pi, merchant_refund_id="booked"), format="json")

    assert response.status_code == 201, response.content
    assert stripe_sandbox.stats()["requests"] == requests
    assert RefundRequest.objects.get(merchant_refund_id="booked").payment_verified is False
