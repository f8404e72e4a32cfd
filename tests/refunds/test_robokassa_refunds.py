"""Robokassa through the whole pipeline, in-process (as tests/refunds/test_execution.py does for
Stripe): filed through the API with invoice items, submitted, polled to a final status; and
what stands in for an idempotency key when an answer is lost."""

import pytest

from refunds import services
from refunds.models import RefundRequest, RefundStatus

pytestmark = pytest.mark.django_db

ITEMS = [
    {"name": "Teapot", "quantity": 1, "cost": {"minor_amount": 1_500, "currency": "RUB"}, "tax": "vat20"},
    {"name": "Cup", "quantity": 2, "cost": {"minor_amount": 600, "currency": "RUB"}},
]


def body(op_key, **fields):
    return {"merchant_refund_id": f"rk-{op_key[:8]}", "provider": "robokassa", "connector_transaction_id": op_key,
            **fields}


def at_robokassa(robokassa_sandbox, op_key):
    return robokassa_sandbox.payment(op_key)["refunds"]


def test_refund_by_items_is_filed_executed_and_followed_to_success(api, agent, robokassa_sandbox):
    op_key = robokassa_sandbox.create_payment(10_000, behavior="stay", description="Tea set")

    response = api(agent).post("/api/refunds/", body(op_key, items=ITEMS), format="json")

    assert response.status_code == 201, response.json()
    filed = response.json()
    assert filed["amount"] == {"minor_amount": 2_700, "currency": "RUB"}  # the items' total
    assert filed["items"][1] == {"name": "Cup", "quantity": 2, "cost": {"minor_amount": 600, "currency": "RUB"},
                                 "tax": "none"}
    assert (filed["status"], filed["product"]) == ("approved", "Tea set")
    refund = RefundRequest.objects.get(merchant_refund_id=filed["merchant_refund_id"])

    services.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.provider_status) == (RefundStatus.PROCESSING, "pending")
    [request_id] = at_robokassa(robokassa_sandbox, op_key)
    assert refund.connector_refund_id == request_id

    services.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING

    robokassa_sandbox.settle(request_id, "finished")
    services.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.resolved_at
    assert api(agent).get(f"/api/refunds/{refund.merchant_refund_id}/").json()["status"] == "succeeded"


def test_canceled_at_robokassa(api, agent, robokassa_sandbox):
    op_key = robokassa_sandbox.create_payment(10_000, behavior="stay")
    api(agent).post("/api/refunds/", body(op_key, amount={"minor_amount": 1_000, "currency": "RUB"}), format="json")
    refund = RefundRequest.objects.get(connector_transaction_id=op_key)
    services.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()

    robokassa_sandbox.settle(refund.connector_refund_id, "canceled")
    services.refund_sync_status(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED


def lose_the_answer_to_the_first_create(api, agent, robokassa_sandbox, op_key):
    api(agent).post("/api/refunds/", body(op_key, amount={"minor_amount": 1_000, "currency": "RUB"}), format="json")
    refund = RefundRequest.objects.get(merchant_refund_id=f"rk-{op_key[:8]}")
    # Robokassa refunds, then the answer is lost (a 500 after the work).
    robokassa_sandbox.set_faults(500, path_prefix="/RefundService/Refund/Create", after=True)
    with pytest.raises(services.TransientProviderError):
        services.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING and not refund.connector_refund_id
    assert len(at_robokassa(robokassa_sandbox, op_key)) == 1 + RefundRequest.objects.exclude(pk=refund.pk).count()
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)  # the retry's time has come
    return refund


def test_a_lost_answer_is_found_again_not_refunded_twice(api, agent, robokassa_sandbox, robokassa_sandbox_clean):
    op_key = robokassa_sandbox.create_payment(10_000, behavior="stay")
    # An earlier refund of the same amount that we know of is not mistaken for the lost one.
    api(agent).post("/api/refunds/", body(op_key, merchant_refund_id="rk-earlier",
                                          amount={"minor_amount": 1_000, "currency": "RUB"}), format="json")
    earlier = RefundRequest.objects.get(merchant_refund_id="rk-earlier")
    services.refund_submit(refund_id=earlier.pk)
    earlier.refresh_from_db()
    refund = lose_the_answer_to_the_first_create(api, agent, robokassa_sandbox, op_key)

    services.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    known, lost = at_robokassa(robokassa_sandbox, op_key)
    assert earlier.connector_refund_id == known
    assert (refund.status, refund.connector_refund_id) == (RefundStatus.PROCESSING, lost)
    assert "not refunding again" in refund.logs.filter(event="note").last().message
    robokassa_sandbox.settle(lost, "finished")
    services.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED


def test_when_the_earlier_outcome_cannot_be_read_a_person_decides(api, agent, robokassa_sandbox, robokassa_sandbox_clean):
    op_key = robokassa_sandbox.create_payment(10_000, behavior="stay")
    refund = lose_the_answer_to_the_first_create(api, agent, robokassa_sandbox, op_key)
    robokassa_sandbox.set_faults(404, count=None, path_prefix="/RefundOfficeExt")  # no lookup (as at Robokassa)

    services.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "unknown_outcome")
    robokassa_sandbox.clear_faults()
    assert len(at_robokassa(robokassa_sandbox, op_key)) == 1


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"items": [{**ITEMS[0], "tax": "vat99"}]}, "invalid_tax", "items"),
        ({"items": [{**ITEMS[0], "quantity": 0}]}, "invalid_amount", "items[0].quantity"),
        ({"items": [{"cost": {"minor_amount": 1, "currency": "RUB"}}]}, "required", "items[0].name"),
        ({"items": [{**ITEMS[0], "colour": "red"}]}, "unknown_field", "items[0].colour"),
        ({"items": []}, "invalid_type", "items"),
        ({"connector_transaction_id": "pi_123456789"}, "invalid_format", "connector_transaction_id"),
        ({"provider": "stripe", "connector_transaction_id": "pi_123456789", "items": ITEMS},
         "items_not_supported", "items"),
        ({"provider": "stripe"}, "invalid_format", "connector_transaction_id"),  # an OpKey is no Stripe id
    ],
)
def test_bad_robokassa_input_is_a_clear_400(api, agent, override, code, field):
    response = api(agent).post("/api/refunds/", body("3FB2F3E7-B9F7-4C6F-B7E2-F0AD02E1AE86", **override),
                               format="json")

    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize(
    "override",
    [
        {"items": ITEMS, "amount": {"minor_amount": 2_000, "currency": "RUB"}},
        {"items": [{**ITEMS[0], "cost": {"minor_amount": 1_500, "currency": "USD"}}],
         "amount": {"minor_amount": 1_500, "currency": "RUB"}},
    ],
)
def test_items_must_add_up_to_the_amount(api, agent, robokassa_sandbox, override):
    op_key = robokassa_sandbox.create_payment(10_000)

    response = api(agent).post("/api/refunds/", body(op_key, **override), format="json")

    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("items_mismatch", "items")
    assert not RefundRequest.objects.exists()
    assert at_robokassa(robokassa_sandbox, op_key) == []


def test_a_disabled_provider_is_unknown(api, agent, settings, robokassa_sandbox):
    settings.REFUND_PROVIDERS = ["stripe"]
    op_key = robokassa_sandbox.create_payment(1_000)

    response = api(agent).post("/api/refunds/", body(op_key), format="json")
    schema = api(agent).get("/api/schema/").json()

    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_provider"
    assert schema["components"]["schemas"]["RefundCreate"]["properties"]["provider"]["enum"] == ["stripe"]
