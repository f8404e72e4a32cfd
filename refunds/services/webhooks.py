"""Provider events (webhooks): stored once per event id, then reconciled against the provider.

An event is a hint, not the truth: processing asks the provider for every refund of the payment
the event is about and records what it says now. So replayed, duplicated or out-of-order events
all end in the same state as polling, and a final refund never moves backwards.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from refunds.models import (
    FINAL_STATUSES,
    Payment,
    RefundOrigin,
    RefundRequest,
    RefundStatus,
    WebhookEvent,
)
from refunds.providers import get_provider, provider_class
from refunds.providers.base import ProviderEvent, ProviderRefundStatus, RefundResult
from refunds.publish import enqueue_on_commit
from refunds.redaction import redact
from refunds.services.execution import poll_delay, refund_record_provider_result
from refunds.services.disputes import payment_dispute_act
from refunds.services.payments import payment_lock_and_refresh
from refunds.services.transitions import refund_create

logger = logging.getLogger(__name__)

_EXTERNAL_STATUS = {
    ProviderRefundStatus.SUCCEEDED: RefundStatus.SUCCEEDED,
    ProviderRefundStatus.FAILED: RefundStatus.FAILED,
    ProviderRefundStatus.CANCELED: RefundStatus.CANCELED,
    ProviderRefundStatus.PENDING: RefundStatus.PROCESSING,
    ProviderRefundStatus.REQUIRES_ACTION: RefundStatus.PROCESSING,
}


def webhook_event_receive(*, provider: str, event: ProviderEvent) -> tuple[WebhookEvent, bool]:
    """Store a verified event (the adapter's parse_webhook) unless it was seen before; queue it
    for processing when it is about refunds. Returns (event, created)."""
    event_id = event.event_id[:255]
    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(
                provider=provider, event_id=event_id, type=event.type[:100], payload=event.payload
            )
            if event.is_refund_event or event.is_dispute_event:
                enqueue_on_commit("webhook_event_process_task", stored.pk)
            else:
                stored.processed_at = timezone.now()
                stored.save(update_fields=["processed_at"])
    except IntegrityError:
        return WebhookEvent.objects.get(provider=provider, event_id=event_id), False
    return stored, True


def webhook_event_process(*, event_pk: int) -> None:
    """Reconcile the payment an event is about. Safe to run twice: a processed event is skipped."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_pk).first()
        if event is None or event.processed_at is not None:
            return
        event.attempts += 1
        event.save(update_fields=["attempts"])
    try:
        # The payments the event is about, as its provider reads its stored payload.
        parsed = provider_class(event.provider).webhook_event(event.payload)
        ids = parsed.transaction_ids
        payments = list(
            Payment.objects.filter(provider=event.provider)
            .filter(Q(connector_transaction_id__in=ids) | Q(aliases__connector_transaction_id__in=ids))
            .distinct()
        )
        for payment in payments:
            if parsed.is_dispute_event:
                payment_dispute_refresh(payment_id=payment.pk)
            else:
                payment_refunds_reconcile(payment_id=payment.pk)
    except Exception as error:
        WebhookEvent.objects.filter(pk=event.pk).update(last_error=redact(str(error))[:500])
        raise
    WebhookEvent.objects.filter(pk=event.pk).update(processed_at=timezone.now(), last_error="")


def payment_refunds_reconcile(*, payment_id: int) -> None:
    """Make our records of one payment's refunds agree with the provider: our refunds take the
    provider's status; refunds made elsewhere are recorded; the refunded amount is refreshed."""
    payment = Payment.objects.get(pk=payment_id)
    adapter = get_provider(payment.provider)
    results = adapter.list_refunds(connector_transaction_id=payment.connector_transaction_id)
    info = adapter.get_payment(connector_transaction_id=payment.connector_transaction_id)
    for result in results:
        refund = RefundRequest.objects.filter(
            provider=payment.provider, connector_refund_id=result.connector_refund_id
        ).first()
        if refund is None and result.merchant_refund_id:
            # Ours, but the answer to our create call was lost: the metadata says whose it is.
            refund = RefundRequest.objects.filter(merchant_refund_id=result.merchant_refund_id, payment=payment).first()
        if refund is None:
            _record_external_refund(payment=payment, result=result)
        elif refund.connector_refund_id != result.connector_refund_id or refund.provider_status != str(result.status):
            refund_record_provider_result(refund_id=refund.pk, result=result)
    with transaction.atomic():
        payment_lock_and_refresh(provider=payment.provider, connector_transaction_id=payment.connector_transaction_id, info=info)


def payment_dispute_refresh(*, payment_id: int) -> None:
    """A dispute event is a hint too: ask the provider for the payment (its dispute with it),
    record that, then act on it (refunds.services.disputes). Replays end in the same state."""
    payment = Payment.objects.get(pk=payment_id)
    info = get_provider(payment.provider).get_payment(connector_transaction_id=payment.connector_transaction_id)
    with transaction.atomic():
        payment_lock_and_refresh(
            provider=payment.provider, connector_transaction_id=payment.connector_transaction_id, info=info
        )
    payment_dispute_act(payment_id=payment.pk)


def _record_external_refund(*, payment: Payment, result: RefundResult) -> None:
    status = _EXTERNAL_STATUS[result.status]
    now = timezone.now()
    try:
        with transaction.atomic():
            refund_create(
                announce=False,
                message=f"{result.connector_refund_id} was made outside Refund Office ({payment.provider} reports {result.status})",
                merchant_refund_id=f"ext-{result.connector_refund_id}"[:64],
                provider=payment.provider,
                connector_transaction_id=payment.connector_transaction_id,
                payment=payment,
                amount_minor=result.amount.minor_amount,
                currency=result.amount.currency,
                reason="Refunded outside Refund Office",
                product=payment.product,
                status=status,
                origin=RefundOrigin.EXTERNAL,
                request_fingerprint="",
                idempotency_key=f"external-{result.connector_refund_id}"[:80],
                payment_verified=True,
                connector_refund_id=result.connector_refund_id,
                provider_status=str(result.status),
                error_code=result.failure_code[:64],
                error_message=result.failure_message[:500],
                resolved_at=now if status in FINAL_STATUSES else None,
                next_action_at=None if status in FINAL_STATUSES else now + poll_delay(0),
            )
    except IntegrityError:
        pass  # another process recorded it first
