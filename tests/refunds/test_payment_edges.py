"""What may still be refunded on a payment, at the edges the mutation run (tests/README.md) found
untested: the payment row as the provider described it, the exact remainder, which of our refunds
count, the messages a caller reads, and the support form's preview of it all."""

import pytest
from django.urls import reverse

from refunds import errors
from refunds.models import Payment, RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.base import PermanentProviderError
from refunds.providers.robokassa import RobokassaProvider
from refunds.services import execution, intake, payments

pytestmark = pytest.mark.django_db
NEW = reverse("refund-new")


def file(agent, pi, amount, merchant_refund_id, currency="USD"):
    return intake.refund_request_create(
        merchant_refund_id=merchant_refund_id, provider="stripe", connector_transaction_id=pi,
        amount=Money(amount, currency), reason="", metadata={}, product="", requested_by=agent,
    )[0]


def test_the_payment_row_is_the_providers_description(agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000, metadata={"product": "Desk lamp"})

    file(agent, pi, 2000, "described")

    payment = Payment.objects.get(connector_transaction_id=pi)
    assert (payment.provider, payment.amount_minor, payment.currency, payment.amount_refunded_minor) == (
        "stripe", 10_000, "USD", 0,
    )
    assert (payment.status, payment.product) == ("succeeded", "Desk lamp")
    assert payment.synced_at is not None


def test_a_long_product_name_is_cut_to_its_column(agent, stripe_sandbox):
    name = "Lamp " + "x" * 295
    pi = stripe_sandbox.create_payment(10_000, metadata={"product": name})

    refund = file(agent, pi, 2000, "long-name")

    assert Payment.objects.get(connector_transaction_id=pi).product == name[:200]
    refund.refresh_from_db()
    assert refund.product == name[:200]


def test_a_payment_the_provider_will_not_describe_is_refused_with_its_code(api, agent, robokassa_sandbox, monkeypatch):
    """Robokassa's OpStateExt code 4 (two operations with one InvoiceID); its sandbox cannot make one."""
    message = "Robokassa has two operations with InvoiceID 5; refund it in the cabinet."

    def ambiguous(self, *, connector_transaction_id):
        raise PermanentProviderError(message, code="ambiguous_invoice")

    monkeypatch.setattr(RobokassaProvider, "get_payment", ambiguous)
    response = api(agent).post("/api/refunds/", {
        "merchant_refund_id": "rk-ambiguous", "provider": "robokassa", "connector_transaction_id": "5",
        "amount": {"minor_amount": 1_000, "currency": "RUB"},
    }, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "ambiguous_invoice", "message": message,
                                        "field": "connector_transaction_id"}
    assert not RefundRequest.objects.exists()


def test_exactly_what_remains_may_be_refunded(agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    file(agent, pi, 6000, "first")

    rest = file(agent, pi, 4000, "rest")

    assert rest.amount_minor == 4000
    with pytest.raises(errors.AmountExceedsRefundable, match=r"^0\.01 USD exceeds what remains refundable on the payment \(0\.00 USD\)\.$"):
        file(agent, pi, 1, "one-more")


def test_less_than_nothing_left_is_shown_as_nothing(agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    file(agent, pi, 2000, "ours-unsent")
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": 9000})

    with pytest.raises(errors.AmountExceedsRefundable) as refused:
        file(agent, pi, 100, "too-late")

    assert refused.value.message == "1.00 USD exceeds what remains refundable on the payment (0.00 USD)."


def test_a_refund_in_another_currency_says_both(agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)

    with pytest.raises(errors.CurrencyMismatch) as refused:
        file(agent, pi, 100, "in-euros", currency="EUR")

    assert (refused.value.message, refused.value.field) == ("The payment is in USD; the refund asks for EUR.", "amount")


def test_an_unknown_provider_is_named(agent):
    with pytest.raises(errors.RefundValidationError) as refused:
        payments.payment_preview(provider="paypal", connector_transaction_id="PAY-1")

    assert (refused.value.code, refused.value.field, refused.value.message) == (
        "unknown_provider", "provider", "Unknown provider 'paypal'.",
    )


def test_a_refund_accepted_unverified_that_fits_is_verified_and_sent(agent, stripe_sandbox, stripe_sandbox_clean):
    """Its own amount is not counted twice when it is checked before sending."""
    pi = stripe_sandbox.create_payment(3000)
    stripe_sandbox.set_faults(status=503, count=3, path_prefix="/v1/payment_intents", methods=["GET"])
    refund = file(agent, pi, 2000, "unverified-fits")
    stripe_sandbox.clear_faults()
    assert not refund.payment_verified

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.payment_verified) == (RefundStatus.SUCCEEDED, True)
    assert refund.logs.filter(event=RefundLog.Event.NOTE, message="Payment verified at the provider").exists()
    assert refund.payment.amount_minor == 3000


def test_the_preview_counts_our_refunds_where_they_are(client, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000, metadata={"product": "Desk lamp"})
    sent = file(agent, pi, 3000, "sent")
    execution.refund_submit(refund_id=sent.pk)
    file(agent, pi, 2000, "waiting")
    failed = file(agent, pi, 1000, "failed")
    RefundRequest.objects.filter(pk=failed.pk).update(status=RefundStatus.FAILED)
    client.force_login(agent)

    page = client.get(NEW, {"provider": "stripe", "connector_transaction_id": pi})

    preview = page.context["preview"]
    assert (preview.provider, preview.connector_transaction_id, preview.product) == ("stripe", pi, "Desk lamp")
    assert (preview.amount, preview.refunded_at_provider, preview.awaiting, preview.refundable_now) == (
        Money(10_000, "USD"), 3000, 2000, 5000,
    )
    assert payments.payment_refund_sums(payment=None) == payments.RefundSums(0, 0)


def test_the_preview_never_shows_less_than_nothing(client, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    file(agent, pi, 2000, "ours-unsent")
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": 9000})
    client.force_login(agent)

    page = client.get(NEW, {"provider": "stripe", "connector_transaction_id": pi})

    assert page.context["preview"].refundable_now == 0
    assert page.context["shown"]["refundable"] == "0.00 USD"


def test_the_preview_says_what_went_wrong(client, agent, stripe_sandbox, stripe_sandbox_clean):
    client.force_login(agent)
    unknown = client.get(NEW, {"provider": "stripe", "connector_transaction_id": "pi_nope123"})
    pi = stripe_sandbox.create_payment(10_000)
    stripe_sandbox.set_faults(status=503, count=5, path_prefix="/v1/payment_intents", methods=["GET"])
    unreachable = client.get(NEW, {"provider": "stripe", "connector_transaction_id": pi})

    assert unknown.context["lookup"].errors["connector_transaction_id"] == ["stripe knows no transaction 'pi_nope123'."]
    [message] = unreachable.context["lookup"].non_field_errors()
    assert message.startswith("stripe cannot be reached right now: ") and len(message) > 37
    assert unreachable.context["preview"] is None


def test_only_this_payments_live_refunds_use_up_its_remainder(agent, stripe_sandbox):
    """Another payment's refunds, and this payment's refund that failed at Stripe (it has Stripe's
    id, but gave nothing back), leave the remainder whole."""
    elsewhere = stripe_sandbox.create_payment(5_000)
    file(agent, elsewhere, 4_000, "other-payment")
    pi = stripe_sandbox.create_payment(5_000, behavior="stay_pending")
    failed = file(agent, pi, 4_000, "failed-at-stripe")
    execution.refund_submit(refund_id=failed.pk)
    stripe_sandbox.settle(RefundRequest.objects.get(pk=failed.pk).connector_refund_id, "failed")
    execution.refund_sync_status(refund_id=failed.pk)
    failed.refresh_from_db()
    assert (failed.status, bool(failed.connector_refund_id)) == (RefundStatus.FAILED, True)

    whole = file(agent, pi, 5_000, "the-whole-payment")

    assert whole.amount_minor == 5_000
    payment = Payment.objects.get(connector_transaction_id=pi)
    assert payments.payment_refundable_remaining(payment=payment) == 0


def test_a_refund_already_at_stripe_counts_once(agent, stripe_sandbox):
    """Sent and still pending at Stripe, it is in the part known at the provider, not also in the
    part not yet sent: the rest of the payment can still be refunded."""
    pi = stripe_sandbox.create_payment(5_000, behavior="stay_pending")
    sent = file(agent, pi, 2_000, "sent-first")
    execution.refund_submit(refund_id=sent.pk)
    sent.refresh_from_db()
    assert (sent.status, bool(sent.connector_refund_id)) == (RefundStatus.PROCESSING, True)

    rest = file(agent, pi, 3_000, "the-rest")

    assert rest.amount_minor == 3_000
    assert payments.payment_refundable_remaining(payment=Payment.objects.get(connector_transaction_id=pi)) == 0
