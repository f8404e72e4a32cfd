"""POST /api/refunds/ against the Stripe sandbox: what a support tool sees."""

from unittest import mock

import pytest

from approvals.models import Approval
from refunds.services import execution
from refunds.models import Payment, RefundLog, RefundRequest, RefundStatus
from refunds.signals import refund_status_changed
from refunds.tasks import refund_submit_task

pytestmark = pytest.mark.django_db


def body(pi, **overrides):
    data = {
        "merchant_refund_id": overrides.pop("merchant_refund_id", f"mr-{pi}"),
        "connector_transaction_id": pi,
        "amount": {"minor_amount": 2500, "currency": "USD"},
        "reason": "Customer returned the item",
        "metadata": {"ticket": "ZD-1001"},
        "product": "Blue mug",
    }
    data.update(overrides)
    return data


def test_small_refund_is_auto_approved_and_queued_for_execution(
    api, agent, stripe_sandbox, django_capture_on_commit_callbacks
):
    pi = stripe_sandbox.create_payment(10_000)

    with django_capture_on_commit_callbacks() as callbacks:
        response = api(agent).post("/api/refunds/", body(pi), format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "approved"
    assert data["amount"] == {"minor_amount": 2500, "currency": "USD"}
    assert data["requested_by"] == "agent"
    assert data["approvals"][0]["decision"] == "auto_approved"
    assert data["error"] is None and data["connector_refund_id"] is None
    refund = RefundRequest.objects.get(merchant_refund_id=f"mr-{pi}")
    assert refund.payment.amount_minor == 10_000 and refund.payment_verified
    assert [log.to_status for log in refund.logs.all()] == ["pending_approval", "approved"]
    # The worker is told only after the commit, and is told about this refund.
    with mock.patch.object(refund_submit_task, "apply_async") as publish:
        for callback in callbacks:
            callback()
    publish.assert_called_once_with(args=(refund.pk,), retry=False)


def test_an_auto_approved_refund_reads_as_filed_then_approved(api, agent, stripe_sandbox):
    """Made approved at once (one INSERT), it still tells the story in two steps: the history, the
    announcements (Slack listens), the approval, and the answer is what a later read shows."""
    pi = stripe_sandbox.create_payment(10_000)
    heard = []

    def listener(sender, refund, from_status, to_status, actor, **kw):
        heard.append((refund.pk, from_status, to_status, actor))

    refund_status_changed.connect(listener, sender=RefundRequest, dispatch_uid="test-intake-listener")
    try:
        response = api(agent).post("/api/refunds/", body(pi), format="json")
    finally:
        refund_status_changed.disconnect(sender=RefundRequest, dispatch_uid="test-intake-listener")

    assert response.status_code == 201, response.json()
    refund = RefundRequest.objects.get(merchant_refund_id=f"mr-{pi}")
    assert heard == [(refund.pk, "", "pending_approval", agent), (refund.pk, "pending_approval", "approved", None)]
    assert [(log.event, log.from_status, log.to_status, log.actor, log.message, log.data) for log in refund.logs.all()] == [
        ("requested", "", "pending_approval", agent, f"Requested 25.00 USD on {pi}", {"payment_verified": True}),
        ("status_changed", "pending_approval", "approved", None, "Auto-approved: at or under the threshold", {}),
    ]
    [approval] = refund.approvals.all()
    assert (approval.decision, approval.approver, approval.comment) == (
        "auto_approved", None, "At or under the auto-approve threshold of 50.00 USD",
    )
    assert refund.approved_at == refund.created_at and refund.next_action_at > refund.approved_at
    later = api(agent).get(f"/api/refunds/mr-{pi}/")
    assert response.json() == later.json()


def test_refund_above_threshold_waits_for_approval(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(20_000)

    response = api(agent).post("/api/refunds/", body(pi, amount={"minor_amount": 5001, "currency": "usd"}), format="json")

    assert response.status_code == 201
    assert response.json()["status"] == "pending_approval"
    assert not Approval.objects.exists()


def test_threshold_is_per_currency(api, agent, stripe_sandbox, settings):
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"EUR": 100}
    pi = stripe_sandbox.create_payment(20_000, currency="eur")

    response = api(agent).post("/api/refunds/", body(pi, amount={"minor_amount": 101, "currency": "EUR"}), format="json")

    assert response.json()["status"] == "pending_approval"


def test_full_refund_takes_what_remains_and_is_judged_on_that_amount(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(4000)
    client = api(agent)
    first = client.post("/api/refunds/", body(pi, merchant_refund_id="part-1"), format="json").json()
    assert first["amount"]["minor_amount"] == 2500

    response = client.post("/api/refunds/", body(pi, merchant_refund_id="rest", amount=None), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["amount"] == {"minor_amount": 1500, "currency": "USD"}
    assert response.json()["status"] == "approved"


def test_full_refund_over_threshold_needs_approval(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(9000)

    response = api(agent).post("/api/refunds/", body(pi, amount=None), format="json")

    assert response.json()["amount"]["minor_amount"] == 9000
    assert response.json()["status"] == "pending_approval"


def test_same_request_replayed_returns_the_same_refund(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)

    first = client.post("/api/refunds/", body(pi), format="json")
    again = client.post("/api/refunds/", body(pi), format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["merchant_refund_id"] == first.json()["merchant_refund_id"]
    assert RefundRequest.objects.count() == 1


def test_same_id_with_a_different_body_is_a_conflict(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    client.post("/api/refunds/", body(pi), format="json")

    response = client.post("/api/refunds/", body(pi, amount={"minor_amount": 2600, "currency": "USD"}), format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert RefundRequest.objects.get().amount_minor == 2500


def test_unknown_transaction_is_404_and_stores_nothing(api, agent):
    response = api(agent).post("/api/refunds/", body("pi_doesnotexist123"), format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "transaction_not_found"
    assert not RefundRequest.objects.exists() and not Payment.objects.exists()


def test_more_than_refundable_counting_open_refunds_is_422(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    client.post("/api/refunds/", body(pi, merchant_refund_id="a", amount={"minor_amount": 6000, "currency": "USD"}), format="json")

    response = client.post(
        "/api/refunds/", body(pi, merchant_refund_id="b", amount={"minor_amount": 4001, "currency": "USD"}), format="json"
    )

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "amount_exceeds_refundable",
        "message": "40.01 USD exceeds what remains refundable on the payment (40.00 USD).",
        "field": "amount",
    }
    assert RefundRequest.objects.count() == 1


def test_refunds_already_made_at_the_provider_count(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": 9000})

    response = api(agent).post("/api/refunds/", body(pi, amount={"minor_amount": 1001, "currency": "USD"}), format="json")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "amount_exceeds_refundable"


def test_failed_refunds_do_not_count_against_the_remainder(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    client.post("/api/refunds/", body(pi, merchant_refund_id="a", amount={"minor_amount": 9000, "currency": "USD"}), format="json")
    RefundRequest.objects.filter(merchant_refund_id="a").update(status=RefundStatus.FAILED)

    response = client.post("/api/refunds/", body(pi, merchant_refund_id="b", amount={"minor_amount": 9000, "currency": "USD"}), format="json")

    assert response.status_code == 201


def test_currency_mismatch_is_422(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000, currency="usd")

    response = api(agent).post("/api/refunds/", body(pi, amount={"minor_amount": 100, "currency": "EUR"}), format="json")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "currency_mismatch"
    assert not RefundRequest.objects.exists()


def test_provider_unreachable_accepts_and_marks_unverified(api, agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.set_faults(status=503, count=5, path_prefix="/v1/payment_intents", methods=["GET"])

    response = api(agent).post("/api/refunds/", body(pi), format="json")

    assert response.status_code == 201, response.json()
    refund = RefundRequest.objects.get()
    assert refund.payment_verified is False
    assert refund.payment.amount_minor is None


def test_provider_unreachable_full_refund_is_503(api, agent, stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.set_faults(status=503, count=5, path_prefix="/v1/payment_intents", methods=["GET"])

    response = api(agent).post("/api/refunds/", body(pi, amount=None), format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"merchant_refund_id": ""}, "required", "merchant_refund_id"),
        ({"merchant_refund_id": "x" * 65}, "too_long", "merchant_refund_id"),
        ({"merchant_refund_id": "has space"}, "invalid_format", "merchant_refund_id"),
        ({"merchant_refund_id": 12}, "invalid_type", "merchant_refund_id"),
        ({"connector_transaction_id": "tx_123"}, "invalid_format", "connector_transaction_id"),
        ({"amount": {"minor_amount": 0, "currency": "USD"}}, "invalid_amount", "amount.minor_amount"),
        ({"amount": {"minor_amount": -5, "currency": "USD"}}, "invalid_amount", "amount.minor_amount"),
        ({"amount": {"minor_amount": 10**15, "currency": "USD"}}, "invalid_amount", "amount.minor_amount"),
        ({"amount": {"minor_amount": 12.5, "currency": "USD"}}, "invalid_type", "amount.minor_amount"),
        ({"amount": {"minor_amount": "100", "currency": "USD"}}, "invalid_type", "amount.minor_amount"),
        ({"amount": {"minor_amount": True, "currency": "USD"}}, "invalid_type", "amount.minor_amount"),
        ({"amount": {"minor_amount": 100, "currency": "XXX"}}, "invalid_currency", "amount.currency"),
        ({"amount": 100}, "invalid_type", "amount"),
        ({"reason": "r" * 501}, "too_long", "reason"),
        ({"reason": "bad\x00byte"}, "invalid_characters", "reason"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "too_many_metadata_keys", "metadata"),
        ({"metadata": {"nested": {"a": 1}}}, "invalid_metadata", "metadata"),
        ({"metadata": []}, "invalid_type", "metadata"),
        ({"provider": "paypal"}, "unknown_provider", "provider"),
        ({"surprise": 1}, "unknown_field", "surprise"),
    ],
)
def test_bad_input_is_a_clear_400_and_stores_nothing(api, agent, override, code, field):
    response = api(agent).post("/api/refunds/", body("pi_whatever", **override), format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["message"]
    assert not RefundRequest.objects.exists() and not RefundLog.objects.exists()


def test_unicode_reason_and_metadata_are_kept(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    reason = "Возврат: товар повреждён — 返品 ✓"

    response = api(agent).post("/api/refunds/", body(pi, reason=reason, metadata={"заказ": "№42"}), format="json")

    assert response.status_code == 201
    assert response.json()["reason"] == reason
    assert response.json()["metadata"] == {"заказ": "№42"}


def test_malformed_json_and_oversized_body(api, agent, settings):
    client = api(agent)
    malformed = client.post("/api/refunds/", data="{not json", content_type="application/json")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    huge = client.post("/api/refunds/", body("pi_x", reason="x" * 2000), format="json")

    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"


def test_authentication_and_roles(api, agent, accountant):
    anonymous = api().post("/api/refunds/", body("pi_x"), format="json")
    bad_token = api()
    bad_token.credentials(HTTP_AUTHORIZATION="Token nope")
    accountant_post = api(accountant).post("/api/refunds/", body("pi_x"), format="json")

    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"
    assert bad_token.get("/api/refunds/").status_code == 401
    assert accountant_post.status_code == 403 and accountant_post.json()["error"]["code"] == "permission_denied"
    assert accountant_post.json()["error"]["message"] == "You may not file refund requests."


def test_reason_codes_are_checked_kept_and_told_to_stripe(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    unknown = client.post("/api/refunds/", body(pi, merchant_refund_id="rc-0", reason_code="because"), format="json")
    filed = client.post("/api/refunds/", body(pi, merchant_refund_id="rc-1", reason_code="duplicate_charge"), format="json")

    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_reason_code"
    assert filed.status_code == 201 and filed.json()["reason_code"] == "duplicate_charge"
    execution.refund_submit(refund_id=RefundRequest.objects.get(merchant_refund_id="rc-1").pk)
    [at_stripe] = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data
    assert at_stripe.reason == "duplicate"  # Stripe's own reason for the code
    assert at_stripe.metadata["reason_note"] == "Customer returned the item"


def test_the_refusal_is_money_in_the_reader_s_language(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(750_000, currency="eur")
    client = api(agent)

    response = client.post(
        "/api/refunds/", body(pi, amount={"minor_amount": 750_001, "currency": "EUR"}), format="json",
        HTTP_ACCEPT_LANGUAGE="de-DE",
    )

    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "7.500,01 EUR exceeds what remains refundable on the payment (7.500,00 EUR)."
    )


def test_the_auto_approval_record_reads_the_same_whatever_the_filer_s_language(api, agent, stripe_sandbox, settings):
    """The request's log and the approval's comment are stored text, read by everyone: English
    figures even when the agent's support tool asks in German."""
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 500_000}
    pi = stripe_sandbox.create_payment(750_000)

    response = api(agent).post(
        "/api/refunds/", body(pi, amount={"minor_amount": 2_500, "currency": "USD"}), format="json",
        HTTP_ACCEPT_LANGUAGE="de-DE",
    )

    assert response.status_code == 201 and response.json()["status"] == "approved"
    refund = RefundRequest.objects.get(merchant_refund_id=f"mr-{pi}")
    assert refund.approvals.get().comment == "At or under the auto-approve threshold of 5,000.00 USD"
    assert refund.logs.order_by("id").first().message == f"Requested 25.00 USD on {pi}"
