"""Disputes: what a payment's dispute (chargeback or inquiry) does to its refunds.

The provider's word on the dispute arrives with the payment (`get_payment`: intake, webhooks,
the worker's check) and is copied onto the payment row by `payment_lock_and_refresh`. Then:

- while a dispute is open, refunds still waiting (pending_approval) or approved on the payment
  go to needs_attention with error_code `payment_disputed` and a message naming the dispute,
  except a refund a finance manager filed despite that very dispute (`dispute_overridden`);
- a dispute opened or lost on a payment whose refund had already succeeded flags that refund
  (`disputed_at`): the customer has the money back and asks their bank for it again.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from refunds.models import Payment, RefundLog, RefundRequest, RefundStatus
from refunds.money import STORED_TEXT_LOCALE, format_minor
from refunds.providers import get_provider
from refunds.providers.base import PaymentInfo, PermanentProviderError, TransientProviderError
from refunds.services.payments import payment_lock_and_refresh
from refunds.services.transitions import refund_log_append, refund_transition
from refunds import errors

logger = logging.getLogger(__name__)

DISPUTE_CODE = "payment_disputed"
# Statuses a dispute holds back: nothing has been sent to the provider yet.
HELD_STATUSES = (RefundStatus.PENDING_APPROVAL, RefundStatus.APPROVED)


def dispute_description(payment: Payment) -> str:
    """"dp_… (fraudulent, needs_response, 50.00 USD)": the dispute as people read it."""
    details = [d for d in (payment.dispute_reason, payment.dispute_status) if d]
    if payment.dispute_amount_minor is not None and payment.currency:
        details.append(format_minor(payment.dispute_amount_minor, payment.currency, STORED_TEXT_LOCALE))
    return f"{payment.dispute_id} ({', '.join(details)})" if details else payment.dispute_id


def disputed_message(payment: Payment) -> str:
    if not payment.dispute_open and payment.dispute_state == "lost":
        return (
            f"The payment {payment.connector_transaction_id} lost its dispute {dispute_description(payment)}: the "
            "customer's bank already gave them the money back."
        )
    return (
        f"The payment {payment.connector_transaction_id} has an open dispute {dispute_description(payment)}: "
        "a refund now could pay the customer twice."
    )


def payment_dispute_sync(*, provider: str, connector_transaction_id: str, info: PaymentInfo) -> Payment:
    """Record the provider's word on the payment (its dispute included) and act on it, in its
    own transaction: used when the news must stay even if the caller then refuses (intake)."""
    with transaction.atomic():
        payment = payment_lock_and_refresh(
            provider=provider, connector_transaction_id=connector_transaction_id, info=info
        )
    payment_dispute_act(payment_id=payment.pk)
    return Payment.objects.get(pk=payment.pk)


def payment_dispute_act(*, payment_id: int) -> None:
    """Act on the payment row's dispute state. Safe to run any number of times: refunds already
    held or flagged are left as they are."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.dispute_id or payment.dispute_state not in ("open", "lost"):
        return
    if payment.dispute_open:
        held = (
            RefundRequest.objects.filter(payment=payment, status__in=HELD_STATUSES)
            .exclude(dispute_overridden=payment.dispute_id)
            .values_list("pk", flat=True)
        )
        for refund_id in list(held):
            refund_hold_for_dispute(refund_id=refund_id, payment=payment, expected_from=set(HELD_STATUSES))
    _flag_refunded_and_disputed(payment)


def refund_hold_for_dispute(
    *, refund_id: int, payment: Payment | None, expected_from: set[str], provider_message: str = ""
) -> RefundRequest | None:
    """Hand a refund to a person because its payment is disputed; None when it moved on."""
    if payment is not None and payment.dispute_id:
        message = disputed_message(payment)
    else:
        message = f"The provider refuses the refund: the payment is disputed. {provider_message}".strip()
    message += " When the dispute is decided: Retry (won) or Cancel."
    try:
        return refund_transition(
            refund_id=refund_id,
            to_status=RefundStatus.NEEDS_ATTENTION,
            expected_from=expected_from,
            message=message,
            data={"code": DISPUTE_CODE, "dispute": payment.dispute_id if payment is not None else ""},
            error_code=DISPUTE_CODE,
            error_message=message[:500],
            next_action_at=None,
            # The provider answered (or was never asked): nothing is in flight.
            unconfirmed_calls=0,
        )
    except errors.InvalidTransition:
        return None


def _flag_refunded_and_disputed(payment: Payment) -> None:
    now = timezone.now()
    refunds = RefundRequest.objects.filter(
        payment=payment, status=RefundStatus.SUCCEEDED, disputed_at__isnull=True
    ).exclude(dispute_overridden=payment.dispute_id)
    for refund_id in list(refunds.values_list("pk", flat=True)):
        with transaction.atomic():
            refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
            if refund.disputed_at is not None:
                continue
            refund.disputed_at = now
            refund.save(update_fields=["disputed_at", "updated_at"])
            refund_log_append(
                refund=refund,
                event=RefundLog.Event.NOTE,
                message=f"Refunded and disputed: {dispute_description(payment)} was opened on "
                f"{payment.connector_transaction_id} after this refund succeeded; the customer may get the "
                "money twice (money at risk twice)",
                data={"code": "refunded_and_disputed", "dispute": payment.dispute_id},
            )
        logger.warning("refund %s: payment %s disputed after the refund succeeded", refund_id, payment.pk)


def refund_hold_after_refusal(*, refund: RefundRequest, error: PermanentProviderError) -> RefundRequest | None:
    """The provider refused because a chargeback holds the payment: nothing was refunded. Not a
    failure (a won dispute makes it refundable again): a person decides, told which dispute.
    The payment is asked about once more so the message can name it; if that fails, the
    provider's own words do."""
    payment = None
    try:
        info = get_provider(refund.provider).get_payment(connector_transaction_id=refund.connector_transaction_id)
        with transaction.atomic():
            payment = payment_lock_and_refresh(
                provider=refund.provider, connector_transaction_id=refund.connector_transaction_id, info=info
            )
    except (TransientProviderError, PermanentProviderError):
        pass
    with transaction.atomic():
        refund_log_append(
            refund=refund,
            event=RefundLog.Event.PROVIDER_ERROR,
            message=f"{refund.provider} refused: {error.message}",
            data={"code": error.code},
        )
    held = refund_hold_for_dispute(
        refund_id=refund.pk,
        payment=payment if payment is not None and payment.dispute_id else None,
        expected_from={RefundStatus.PROCESSING},
        provider_message=error.message,
    )
    if payment is not None:
        payment_dispute_act(payment_id=payment.pk)  # the payment's other waiting refunds too
    return held
