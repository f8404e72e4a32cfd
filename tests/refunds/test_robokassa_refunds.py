"""Robokassa through the whole pipeline, in-process (as tests/refunds/test_execution.py does for
Stripe): filed through the API with invoice items, submitted, polled to a final status; what may still
be refunded when Robokassa reports no refunded sum; and what stands in for an idempotency key
when an answer is lost."""

import pytest

from refunds.services import execution
from refunds.models import RefundRequest, RefundStatus

pytestmark = pytest.mark.django_db

ITEMS = [
    {"name": "Teapot", "quantity": 1, "cost": {"minor_amount": 1_500, "currency": "RUB"}, "tax": "vat20"},
    {"name": "Cup", "quantity": 2, "cost": {"minor_amount": 600, "currency": "RUB"}},
]


def body(invoice_id, **fields):
    return {"merchant_refund_id": f"rk-{invoice_id}", "provider": "robokassa", "connector_transaction_id": invoice_id,
            **fields}


def at_robokassa(robokassa_sandbox, invoice_id):
    return robokassa_sandbox.payment(invoice_id)["refunds"]


def file_1000_rub(api, agent, robokassa_sandbox):
    """A 10.00 RUB refund filed through the API on a new 100.00 RUB payment: (invoice id, refund)."""
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="stay")
    response = api(agent).post("/api/refunds/", body(invoice_id, amount={"minor_amount": 1_000, "currency": "RUB"}),
                               format="json")
    assert response.status_code == 201, response.json()
    return invoice_id, RefundRequest.objects.get(connector_transaction_id=invoice_id)


def test_refund_by_items_is_filed_executed_and_followed_to_success(api, agent, robokassa_sandbox):
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="stay", description="Tea set")

    response = api(agent).post("/api/refunds/", body(invoice_id, items=ITEMS), format="json")

    assert response.status_code == 201, response.json()
    filed = response.json()
    assert filed["amount"] == {"minor_amount": 2_700, "currency": "RUB"}  # the items' total
    assert filed["items"][1] == {"name": "Cup", "quantity": 2, "cost": {"minor_amount": 600, "currency": "RUB"},
                                 "tax": "none"}
    assert (filed["status"], filed["product"]) == ("approved", "Tea set")
    refund = RefundRequest.objects.get(merchant_refund_id=filed["merchant_refund_id"])

    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.provider_status) == (RefundStatus.PROCESSING, "pending")
    [request_id] = at_robokassa(robokassa_sandbox, invoice_id)
    assert refund.connector_refund_id == request_id
    [made] = robokassa_sandbox.payment(invoice_id)["refunds_made"]  # the receipt Robokassa got
    assert made["amount"] == "27.00" and made["items"] == [
        {"Name": "Teapot", "Quantity": "1.0", "Cost": "15.0", "Tax": "vat20"},
        {"Name": "Cup", "Quantity": "2.0", "Cost": "6.0", "Tax": "none"},
    ]

    execution.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING

    robokassa_sandbox.settle(request_id, "finished")
    execution.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.resolved_at
    assert api(agent).get(f"/api/refunds/{refund.merchant_refund_id}/").json()["status"] == "succeeded"


def test_canceled_at_robokassa(api, agent, robokassa_sandbox):
    invoice_id, refund = file_1000_rub(api, agent, robokassa_sandbox)
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()

    robokassa_sandbox.settle(refund.connector_refund_id, "canceled")
    execution.refund_sync_status(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED


def lose_the_answer_to_the_first_create(api, agent, robokassa_sandbox, invoice_id):
    api(agent).post("/api/refunds/", body(invoice_id, amount={"minor_amount": 1_000, "currency": "RUB"}), format="json")
    refund = RefundRequest.objects.get(merchant_refund_id=f"rk-{invoice_id}")
    # Robokassa refunds, then the answer is lost (a 500 after the work).
    robokassa_sandbox.set_faults(500, path_prefix="/RefundService/Refund/Create", after=True)
    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING and not refund.connector_refund_id
    assert len(at_robokassa(robokassa_sandbox, invoice_id)) == 1 + RefundRequest.objects.exclude(pk=refund.pk).count()
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)  # the retry's time has come
    return refund


def test_a_lost_answer_is_never_refunded_twice_a_person_decides(api, agent, robokassa_sandbox,
                                                                robokassa_sandbox_clean):
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="stay")
    refund = lose_the_answer_to_the_first_create(api, agent, robokassa_sandbox, invoice_id)

    execution.refund_submit(refund_id=refund.pk)  # the retry: Robokassa cannot list refunds

    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "unknown_outcome")
    assert "cabinet" in refund.error_message
    assert len(at_robokassa(robokassa_sandbox, invoice_id)) == 1


def test_a_person_who_found_no_refund_at_robokassa_sends_it_once_more(api, agent, manager, robokassa_sandbox,
                                                                      robokassa_sandbox_clean):
    invoice_id, refund = file_1000_rub(api, agent, robokassa_sandbox)
    robokassa_sandbox.set_faults(500, path_prefix="/RefundService/Refund/Create")  # refused before any work
    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
    execution.refund_submit(refund_id=refund.pk)  # unknown outcome: a person checks the cabinet
    refund.refresh_from_db()
    assert (refund.status, at_robokassa(robokassa_sandbox, invoice_id)) == (RefundStatus.NEEDS_ATTENTION, [])

    execution.refund_retry(refund_id=refund.pk, actor=manager)  # they found none: send it
    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    [request_id] = at_robokassa(robokassa_sandbox, invoice_id)
    assert (refund.status, refund.connector_refund_id) == (RefundStatus.PROCESSING, request_id)
    assert "found no refund at the provider" in refund.logs.filter(event="status_changed", actor=manager).get().message


def test_a_failed_lookup_before_create_is_simply_retried(api, agent, robokassa_sandbox, robokassa_sandbox_clean):
    invoice_id, refund = file_1000_rub(api, agent, robokassa_sandbox)
    robokassa_sandbox.set_faults(503, path_prefix="/Merchant/WebService")  # OpStateExt, before Create
    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    assert at_robokassa(robokassa_sandbox, invoice_id) == []
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    [request_id] = at_robokassa(robokassa_sandbox, invoice_id)
    assert (refund.status, refund.connector_refund_id) == (RefundStatus.PROCESSING, request_id)


def test_our_own_refunds_count_against_what_remains(api, agent, robokassa_sandbox, client):
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="stay")
    first = api(agent).post("/api/refunds/", body(invoice_id, amount={"minor_amount": 6_000, "currency": "RUB"}),
                            format="json")
    assert first.status_code == 201, first.json()
    refund = RefundRequest.objects.get(merchant_refund_id=first.json()["merchant_refund_id"])
    RefundRequest.objects.filter(pk=refund.pk).update(status=RefundStatus.APPROVED)
    execution.refund_submit(refund_id=refund.pk)
    robokassa_sandbox.settle(at_robokassa(robokassa_sandbox, invoice_id)[0], "finished")
    execution.refund_sync_status(refund_id=refund.pk)

    second = api(agent).post("/api/refunds/", body(invoice_id, merchant_refund_id="rk-second",
                                                   amount={"minor_amount": 4_001, "currency": "RUB"}), format="json")
    client.force_login(agent)
    page = client.get("/refunds/new", {"provider": "robokassa", "connector_transaction_id": invoice_id})

    assert second.status_code == 422 and second.json()["error"]["code"] == "amount_exceeds_refundable"
    assert page.context["preview"].refundable_now == 4_000
    assert "60.00 RUB" in page.content.decode() and "40.00 RUB" in page.content.decode()
    assert len(at_robokassa(robokassa_sandbox, invoice_id)) == 1


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"items": [{**ITEMS[0], "tax": "vat99"}]}, "invalid_tax", "items"),
        ({"items": [{**ITEMS[0], "quantity": 0}]}, "invalid_amount", "items[0].quantity"),
        ({"items": [{"cost": {"minor_amount": 1, "currency": "RUB"}}]}, "required", "items[0].name"),
        ({"items": [{**ITEMS[0], "colour": "red"}]}, "unknown_field", "items[0].colour"),
        ({"items": []}, "invalid_type", "items"),
        ({"connector_transaction_id": "pi_123456789"}, "invalid_format", "connector_transaction_id"),
        ({"connector_transaction_id": "3FB2F3E7-B9F7-4C6F-B7E2-F0AD02E1AE86"}, "invalid_format",
         "connector_transaction_id"),  # an OpKey: Refund Office asks for the InvoiceID
        ({"provider": "stripe", "connector_transaction_id": "pi_123456789", "items": ITEMS},
         "items_not_supported", "items"),
        ({"provider": "stripe"}, "invalid_format", "connector_transaction_id"),  # an InvoiceID is no Stripe id
    ],
)
def test_bad_robokassa_input_is_a_clear_400(api, agent, override, code, field):
    response = api(agent).post("/api/refunds/", body("2147480001", **override),
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
    invoice_id = robokassa_sandbox.create_payment(10_000)

    response = api(agent).post("/api/refunds/", body(invoice_id, **override), format="json")

    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("items_mismatch", "items")
    assert not RefundRequest.objects.exists()
    assert at_robokassa(robokassa_sandbox, invoice_id) == []


def test_a_disabled_provider_is_unknown(api, agent, settings, robokassa_sandbox):
    settings.REFUND_PROVIDERS = ["stripe"]
    invoice_id = robokassa_sandbox.create_payment(1_000)

    response = api(agent).post("/api/refunds/", body(invoice_id), format="json")
    schema = api(agent).get("/api/schema/").json()

    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_provider"
    assert schema["components"]["schemas"]["RefundCreate"]["properties"]["provider"]["enum"] == ["stripe"]


def test_the_refund_row_says_how_many_calls_are_unconfirmed(api, agent, manager, robokassa_sandbox,
                                                             robokassa_sandbox_clean):
    invoice_id, refund = file_1000_rub(api, agent, robokassa_sandbox)

    def unconfirmed():
        RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
        refund.refresh_from_db()
        return refund.unconfirmed_calls

    robokassa_sandbox.set_faults(503, path_prefix="/Merchant/WebService")  # fails before Create is called
    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    assert unconfirmed() == 0
    robokassa_sandbox.set_faults(500, path_prefix="/RefundService/Refund/Create")  # Create called, no answer
    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    assert unconfirmed() == 1
    execution.refund_submit(refund_id=refund.pk)
    assert (unconfirmed(), refund.status, refund.error_code) == (2, RefundStatus.NEEDS_ATTENTION, "unknown_outcome")
    assert refund.outcome_checked_at is None

    execution.refund_retry(refund_id=refund.pk, actor=manager)
    assert unconfirmed() == 0 and refund.outcome_checked_at is not None
    robokassa_sandbox.clear_faults()
    execution.refund_submit(refund_id=refund.pk)
    assert (unconfirmed(), refund.status, len(at_robokassa(robokassa_sandbox, invoice_id))) == (
        0, RefundStatus.PROCESSING, 1)
