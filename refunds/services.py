"""Every write to a refund goes through here.

Two rules hold throughout: a refund's status changes only in `refund_transition` (row lock,
the transition table, a log row, a signal), and a provider is never called inside a database
transaction (claim in one short transaction, call, record the answer in another).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from approvals.policy import auto_approve_threshold
from refunds import errors
from refunds.models import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    OPEN_STATUSES,
    PROVIDER_CORRECTIONS,
    Payment,
    RefundLog,
    RefundRequest,
    RefundStatus,
    WebhookEvent,
)
from refunds.money import Money
from refunds.publish import enqueue_on_commit
from refunds.providers import UnknownProvider, get_provider, provider_names
from refunds.providers.base import (
    LineItem,
    PaymentInfo,
    PermanentProviderError,
    ProviderRefundStatus,
    RefundResult,
    TransientProviderError,
)
from refunds.providers.base import TransactionNotFound as ProviderTransactionNotFound
from refunds.ratelimit import RateLimited, provider_slot_acquire
from refunds.redaction import redact
from refunds.signals import refund_status_changed

logger = logging.getLogger(__name__)

_PROVIDER_FINAL = {
    ProviderRefundStatus.SUCCEEDED: RefundStatus.SUCCEEDED,
    ProviderRefundStatus.FAILED: RefundStatus.FAILED,
    ProviderRefundStatus.CANCELED: RefundStatus.CANCELED,
}


# --- the one door -------------------------------------------------------------------------


def refund_log_append(*, refund: RefundRequest, event: str, message: str = "", actor=None, data=None, **kw):
    return RefundLog.objects.create(
        refund=refund, event=event, message=redact(message)[:1000], actor=actor, data=data or {}, **kw
    )


def refund_transition(
    *,
    refund_id: int,
    to_status: str,
    actor=None,
    message: str = "",
    data: dict | None = None,
    expected_from: set[str] | None = None,
    allow_correction: bool = False,
    **fields,
) -> RefundRequest:
    """Move one refund to `to_status`, or raise InvalidTransition. `fields` are saved with it.
    `allow_correction` admits the provider's corrections (PROVIDER_CORRECTIONS) too."""
    now = timezone.now()
    with transaction.atomic():
        refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
        from_status = refund.status
        if expected_from is not None and from_status not in expected_from:
            raise errors.InvalidTransition(f"Refund {refund} is {from_status}, not {'/'.join(sorted(expected_from))}.")
        allowed = ALLOWED_TRANSITIONS.get(from_status, set())
        if allow_correction:
            allowed = allowed | PROVIDER_CORRECTIONS.get(from_status, set())
        if to_status not in allowed:
            raise errors.InvalidTransition(f"Refund {refund} cannot go from {from_status} to {to_status}.")
        refund.status = to_status
        if to_status in FINAL_STATUSES or to_status == RefundStatus.NEEDS_ATTENTION:
            fields.setdefault("call_started_at", None)
        if to_status in FINAL_STATUSES:
            fields.setdefault("resolved_at", now)
            fields.setdefault("next_action_at", None)
        for name, value in fields.items():
            setattr(refund, name, value)
        refund.save(update_fields=["status", "updated_at", *fields])
        refund_log_append(
            refund=refund,
            event=RefundLog.Event.STATUS_CHANGED,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            message=message,
            data=data,
        )
        refund_status_changed.send(
            sender=RefundRequest, refund=refund, from_status=from_status, to_status=to_status, actor=actor
        )
    return refund


# --- intake -------------------------------------------------------------------------------


def _fingerprint(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def payment_refundable_remaining(*, payment: Payment, exclude_refund_id: int | None = None) -> int | None:
    """What may still be refunded. None when the payment's amount is not known yet.

    Refunds that reached the provider are in its refunded amount, but that figure was read
    before the payment row was locked and may be stale: a worker may have sent one of ours
    since. So the part at the provider is the larger of the provider's figure and the sum of
    the refunds we know are there; refunds not yet sent are added on top."""
    if payment.amount_minor is None:
        return None
    ours = RefundRequest.objects.filter(payment=payment).exclude(pk=exclude_refund_id)
    not_yet_at_provider = (
        ours.filter(status__in=OPEN_STATUSES, connector_refund_id="").aggregate(total=Sum("amount_minor"))["total"] or 0
    )
    known_at_provider = (
        ours.filter(status__in=[*OPEN_STATUSES, RefundStatus.SUCCEEDED])
        .exclude(connector_refund_id="")
        .aggregate(total=Sum("amount_minor"))["total"]
        or 0
    )
    at_provider = max(payment.amount_refunded_minor, known_at_provider)
    return payment.amount_minor - at_provider - not_yet_at_provider


def payment_lock_and_refresh(*, provider: str, connector_transaction_id: str, info: PaymentInfo | None) -> Payment:
    """Get (or create) and lock the payment row; refresh it from the provider's answer."""
    payment, _ = Payment.objects.get_or_create(provider=provider, connector_transaction_id=connector_transaction_id)
    payment = Payment.objects.select_for_update(of=("self",)).get(pk=payment.pk)
    if info is not None:
        payment.amount_minor = info.amount.minor_amount
        payment.currency = info.amount.currency
        payment.amount_refunded_minor = info.amount_refunded
        payment.status = info.status
        payment.product = info.product[:200]
        payment.customer = info.customer[:255]
        payment.synced_at = timezone.now()
        payment.save(
            update_fields=[
                "amount_minor", "currency", "amount_refunded_minor", "status", "product", "customer", "synced_at",
            ]
        )
    return payment


def _check_amount(*, payment: Payment, amount: Money, exclude_refund_id: int | None = None) -> None:
    if payment.currency and payment.currency != amount.currency:
        raise errors.CurrencyMismatch(
            f"The payment is in {payment.currency}; the refund asks for {amount.currency}.", field="amount"
        )
    remaining = payment_refundable_remaining(payment=payment, exclude_refund_id=exclude_refund_id)
    if remaining is not None and amount.minor_amount > remaining:
        raise errors.AmountExceedsRefundable(
            f"{amount.minor_amount} exceeds what remains refundable on the payment ({max(remaining, 0)}).",
            field="amount",
        )


@dataclass(frozen=True)
class PaymentPreview:
    provider: str
    connector_transaction_id: str
    amount: Money
    refunded_at_provider: int
    awaiting: int  # our refunds on it, open and not yet at the provider
    product: str

    @property
    def refundable_now(self) -> int:
        return max(self.amount.minor_amount - self.refunded_at_provider - self.awaiting, 0)


def payment_preview(*, provider: str, connector_transaction_id: str) -> PaymentPreview:
    """What a payment is and what may still be refunded, asked of the provider now. Writes
    nothing: it is what the support form shows before anything is filed."""
    try:
        adapter = get_provider(provider)
    except UnknownProvider:
        raise errors.RefundValidationError(f"Unknown provider {provider!r}.", field="provider", code="unknown_provider")
    try:
        provider_slot_acquire(provider, max_wait=settings.PROVIDER_RATE_MAX_WAIT_INTAKE_SECONDS)
        info = adapter.get_payment(connector_transaction_id=connector_transaction_id)
    except ProviderTransactionNotFound as error:
        raise errors.TransactionNotFound(
            f"{provider} knows no transaction {connector_transaction_id!r}.", field="connector_transaction_id"
        ) from error
    except PermanentProviderError as error:
        raise errors.RefundValidationError(error.message, field="connector_transaction_id", code=error.code)
    except TransientProviderError as error:
        raise errors.ProviderUnavailable(f"{provider} cannot be reached right now: {error.message}") from error
    payment = Payment.objects.filter(provider=provider, connector_transaction_id=connector_transaction_id).first()
    awaiting = known_at_provider = 0
    if payment is not None:
        ours = RefundRequest.objects.filter(payment=payment)
        awaiting = (
            ours.filter(status__in=OPEN_STATUSES, connector_refund_id="").aggregate(total=Sum("amount_minor"))["total"]
            or 0
        )
        # As in payment_refundable_remaining: a provider that reports no refunded sum
        # (Robokassa) still has ours.
        known_at_provider = (
            ours.filter(status__in=[*OPEN_STATUSES, RefundStatus.SUCCEEDED])
            .exclude(connector_refund_id="")
            .aggregate(total=Sum("amount_minor"))["total"]
            or 0
        )
    return PaymentPreview(
        provider=provider,
        connector_transaction_id=connector_transaction_id,
        amount=info.amount,
        refunded_at_provider=max(info.amount_refunded, known_at_provider),
        awaiting=awaiting,
        product=info.product,
    )


def refund_request_create(
    *,
    merchant_refund_id: str,
    provider: str,
    connector_transaction_id: str,
    amount: Money | None,
    reason: str,
    metadata: dict,
    product: str,
    requested_by,
    items: list[LineItem] | None = None,
    reason_code: str = "",
) -> tuple[RefundRequest, bool]:
    """File a refund. Returns (refund, created): a replay of the same request returns the
    existing refund with created=False. `items` (invoice lines, for providers that take them)
    must add up to the amount; without an amount their total is the amount."""
    if not requested_by.has_perm("refunds.add_refundrequest"):
        raise errors.PermissionDenied("You may not file refund requests.")
    items = list(items or [])
    fingerprint_parts = {}
    if items:  # only then, so requests filed before items existed still replay
        fingerprint_parts["items"] = [item.as_dict() for item in items]
    if reason_code:
        fingerprint_parts["reason_code"] = reason_code
    fingerprint = _fingerprint(
        provider=provider,
        connector_transaction_id=connector_transaction_id,
        amount=amount.as_dict() if amount else None,
        reason=reason,
        metadata=metadata,
        product=product,
        requested_by=requested_by.pk,
        **fingerprint_parts,
    )
    replay = _replay(merchant_refund_id=merchant_refund_id, fingerprint=fingerprint)
    if replay is not None:
        return replay, False
    try:
        adapter = get_provider(provider)
    except UnknownProvider:
        raise errors.RefundValidationError(f"Unknown provider {provider!r}.", field="provider", code="unknown_provider")
    if items:
        _check_items_supported(adapter=adapter, items=items)
        if amount is None:
            amount = Money(sum(item.total_minor for item in items), items[0].cost.currency)

    try:
        provider_slot_acquire(provider, max_wait=settings.PROVIDER_RATE_MAX_WAIT_INTAKE_SECONDS)
        info = adapter.get_payment(connector_transaction_id=connector_transaction_id)
    except ProviderTransactionNotFound as error:
        raise errors.TransactionNotFound(
            f"{provider} knows no transaction {connector_transaction_id!r} ({error.code}).",
            field="connector_transaction_id",
        ) from error
    except PermanentProviderError as error:
        raise errors.RefundValidationError(error.message, field="connector_transaction_id", code=error.code)
    except TransientProviderError:
        # Accept now; the payment is checked again before anything is executed.
        logger.warning("payment lookup failed for %s %s; accepting unverified", provider, connector_transaction_id)
        info = None
        if amount is None:
            raise errors.ProviderUnavailable(
                f"{provider} cannot be reached to look up the payment's amount; give an amount or retry later.",
                field="amount",
            ) from None

    try:
        with transaction.atomic():
            payment = payment_lock_and_refresh(provider=provider, connector_transaction_id=connector_transaction_id, info=info)
            if amount is None:
                remaining = payment_refundable_remaining(payment=payment)
                if not remaining or remaining <= 0:
                    raise errors.AmountExceedsRefundable("Nothing remains refundable on this payment.", field="amount")
                amount = Money(remaining, payment.currency)
            if items:
                _check_items_add_up(items=items, amount=amount)
            _check_amount(payment=payment, amount=amount)
            refund = RefundRequest.objects.create(
                merchant_refund_id=merchant_refund_id,
                provider=provider,
                connector_transaction_id=connector_transaction_id,
                payment=payment,
                amount_minor=amount.minor_amount,
                currency=amount.currency,
                reason=reason,
                reason_code_id=reason_code or None,
                metadata=metadata,
                items=[item.as_dict() for item in items],
                product=product or payment.product,
                requested_by=requested_by,
                request_fingerprint=fingerprint,
                idempotency_key=f"refundoffice-{uuid.uuid4().hex}",
                payment_verified=info is not None,
                status=RefundStatus.PENDING_APPROVAL,
            )
            refund_log_append(
                refund=refund,
                event=RefundLog.Event.REQUESTED,
                to_status=refund.status,
                actor=requested_by,
                message=f"Requested {refund.amount_display} on {connector_transaction_id}",
                data={"payment_verified": info is not None},
            )
            refund_status_changed.send(
                sender=RefundRequest, refund=refund, from_status="", to_status=refund.status, actor=requested_by
            )
            if amount.minor_amount <= auto_approve_threshold(amount.currency):
                from approvals.services import refund_auto_approve

                refund = refund_auto_approve(refund=refund)
    except IntegrityError:
        # Another request with this merchant_refund_id won the race: same body replays it.
        replay = _replay(merchant_refund_id=merchant_refund_id, fingerprint=fingerprint)
        if replay is None:
            raise
        return replay, False
    return refund, True


def _check_items_supported(*, adapter, items: list[LineItem]) -> None:
    if not adapter.supports_items:
        raise errors.RefundValidationError(
            f"{adapter.name} refunds have no invoice items.", field="items", code="items_not_supported"
        )
    unknown_tax = next((item.tax for item in items if item.tax not in adapter.item_tax_rates), None)
    if unknown_tax is not None:
        raise errors.RefundValidationError(
            f"{adapter.name} knows no tax rate {unknown_tax!r} ({', '.join(adapter.item_tax_rates)}).",
            field="items",
            code="invalid_tax",
        )


def _check_items_add_up(*, items: list[LineItem], amount: Money) -> None:
    """Checked with the amount, once the payment is known (like the amount's own checks)."""
    if {item.cost.currency for item in items} != {amount.currency}:
        raise errors.RefundValidationError(
            f"Every item's cost must be in {amount.currency}.", field="items", code="items_mismatch"
        )
    total = sum(item.total_minor for item in items)
    if total != amount.minor_amount:
        raise errors.RefundValidationError(
            f"The items add up to {total}, not the amount {amount.minor_amount}.", field="items", code="items_mismatch"
        )


def _replay(*, merchant_refund_id: str, fingerprint: str) -> RefundRequest | None:
    existing = RefundRequest.objects.filter(merchant_refund_id=merchant_refund_id).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise errors.IdempotencyConflict(
            f"merchant_refund_id {merchant_refund_id!r} was already used for a different request.",
            field="merchant_refund_id",
        )
    return existing


def refund_mark_approved(*, refund_id: int, actor=None, message: str = "") -> RefundRequest:
    """pending_approval → approved, and hand it to the worker. Called by approvals.services."""
    now = timezone.now()
    refund = refund_transition(
        refund_id=refund_id,
        to_status=RefundStatus.APPROVED,
        actor=actor,
        message=message,
        approved_at=now,
        next_action_at=now + timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS),
    )
    _enqueue_submit(refund.pk)
    return refund


def _enqueue_submit(refund_id: int) -> None:
    enqueue_on_commit("refund_submit_task", refund_id)


# --- execution ----------------------------------------------------------------------------


def _verify_payment_before_submit(refund: RefundRequest) -> None:
    """A refund accepted while the provider was unreachable is checked before it is executed."""
    info = get_provider(refund.provider).get_payment(connector_transaction_id=refund.connector_transaction_id)
    with transaction.atomic():
        payment = payment_lock_and_refresh(provider=refund.provider, connector_transaction_id=refund.connector_transaction_id, info=info)
        _check_amount(payment=payment, amount=Money(refund.amount_minor, refund.currency), exclude_refund_id=refund.pk)
        RefundRequest.objects.filter(pk=refund.pk).update(payment_verified=True)
        refund_log_append(refund=refund, event=RefundLog.Event.NOTE, message="Payment verified at the provider")


def refund_submit(*, refund_id: int) -> RefundRequest | None:
    """Execute an approved refund at its provider. Safe to run any number of times, at once:
    the claim is a locked transition and the provider call carries the refund's idempotency key.
    Raises TransientProviderError for the task to retry."""
    refund = RefundRequest.objects.get(pk=refund_id)
    if refund.status not in (RefundStatus.APPROVED, RefundStatus.PROCESSING) or refund.connector_refund_id:
        return None  # already submitted, final, or waiting for a person
    if refund.provider not in provider_names():
        return _flag_provider_disabled(refund)
    max_wait = settings.PROVIDER_RATE_MAX_WAIT_SECONDS
    if not refund.payment_verified:
        provider_slot_acquire(refund.provider, max_wait=max_wait)
        try:
            _verify_payment_before_submit(refund)
        except (errors.AmountExceedsRefundable, errors.CurrencyMismatch) as error:
            return _fail(refund_id, code=error.code, message=error.message)
        except ProviderTransactionNotFound as error:
            return _fail(refund_id, code="transaction_not_found", message=error.message)

    # Book the provider's rate before claiming: a refund held back by our own limit is not
    # an attempt, and nothing is logged for it.
    provider_slot_acquire(refund.provider, max_wait=max_wait)
    refund = _claim_for_submit(refund_id)
    if refund is None:
        return None
    adapter = get_provider(refund.provider)
    # Calls since a person last checked the provider (see refund_retry); of those, attempts that
    # failed before the refund was sent (the adapter said so) cannot have refunded.
    logs = refund.logs.all()
    checked = logs.filter(event=RefundLog.Event.STATUS_CHANGED, data__outcome_checked=True).order_by("-pk").first()
    if checked is not None:
        logs = logs.filter(pk__gt=checked.pk)
    calls = logs.filter(event=RefundLog.Event.PROVIDER_CALL).count()
    unsent = logs.filter(event=RefundLog.Event.PROVIDER_ERROR, data__not_sent=True).count()
    if not adapter.idempotent_create and calls - unsent > 1:
        # An earlier call (this claim's log row is the last) may have refunded without our
        # hearing of it, also before a person's retry, and this provider would refund again:
        # look before creating.
        try:
            earlier = _unrecorded_provider_refund(adapter=adapter, refund=refund)
        except TransientProviderError as error:
            return _after_transient_submit_error(refund, error)
        except PermanentProviderError as error:
            return refund_flag_for_attention(
                refund_id=refund_id,
                message=f"Cannot tell whether an earlier attempt refunded at {refund.provider}, so not "
                f"asking again; check there ({error.message}). If it made no refund, Retry sends it",
                code="unknown_outcome",
            )
        if earlier is not None:
            with transaction.atomic():
                refund_log_append(
                    refund=refund,
                    event=RefundLog.Event.NOTE,
                    message=f"An earlier attempt made {earlier.connector_refund_id}; recording it, not refunding again",
                )
            return refund_record_provider_result(refund_id=refund_id, result=earlier)
    try:
        result = adapter.create_refund(
            merchant_refund_id=refund.merchant_refund_id,
            connector_transaction_id=refund.connector_transaction_id,
            amount=Money(refund.amount_minor, refund.currency),
            # The adapter maps the code to the provider's own reason where it has one.
            reason=refund.reason,
            reason_code=refund.reason_code_id or "",
            metadata={
                **{str(k): str(v) for k, v in refund.metadata.items()},
                **({"reason_code": refund.reason_code_id} if refund.reason_code_id else {}),
                **({"reason_note": refund.reason[:500]} if refund.reason else {}),
            },
            idempotency_key=refund.idempotency_key,
            items=[LineItem.from_dict(item) for item in refund.items] or None,
        )
    except TransientProviderError as error:
        return _after_transient_submit_error(refund, error)
    except PermanentProviderError as error:
        return _fail(refund_id, code=error.code, message=error.message)
    return refund_record_provider_result(refund_id=refund_id, result=result)


def _unrecorded_provider_refund(*, adapter, refund: RefundRequest) -> RefundResult | None:
    """The oldest refund of this payment at the provider that none of our records holds, of
    this refund's amount and not canceled: what an unanswered earlier call of ours made."""
    recorded = set(
        RefundRequest.objects.filter(provider=refund.provider, connector_transaction_id=refund.connector_transaction_id)
        .exclude(connector_refund_id="")
        .values_list("connector_refund_id", flat=True)
    )
    for result in adapter.list_refunds(connector_transaction_id=refund.connector_transaction_id):
        if (
            result.connector_refund_id not in recorded
            and result.amount == Money(refund.amount_minor, refund.currency)
            and result.status != ProviderRefundStatus.CANCELED
        ):
            return result
    return None


def _retry_delay(attempt: int, error: TransientProviderError) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After wins when it is longer."""
    ceiling = min(settings.REFUND_RETRY_BACKOFF_MAX, settings.REFUND_RETRY_BACKOFF_BASE * 2 ** (attempt - 1))
    return max(random.uniform(ceiling / 2, ceiling), error.retry_after or 0)


def _after_transient_submit_error(refund: RefundRequest, error: TransientProviderError) -> RefundRequest | None:
    """Log the failed attempt; flag the refund for a person when the attempts are used up, else
    raise with `retry_in` set so the task retries then (the row says so too, for the dispatcher)."""
    attempts = refund.submit_attempts
    throttled = error.code == "rate_limit"  # the provider's 429: wait as told, not a failure
    # The call is over: a retry (or the dispatcher) may call again without waiting for the lease.
    RefundRequest.objects.filter(pk=refund.pk).update(call_started_at=None)
    if throttled:
        attempts -= 1
        RefundRequest.objects.filter(pk=refund.pk).update(submit_attempts=attempts)
    elif attempts >= settings.REFUND_SUBMIT_MAX_ATTEMPTS:
        with transaction.atomic():
            refund_log_append(
                refund=refund,
                event=RefundLog.Event.PROVIDER_ERROR,
                message=f"Attempt {attempts} failed, no attempts left: {error.message}",
                data={"code": error.code, "transient": True, **_not_sent(error)},
            )
        return refund_flag_for_attention(
            refund_id=refund.pk,
            message=f"{refund.provider} kept failing after {attempts} attempts: {error.message}",
            code=error.code,
        )
    if throttled:
        error.retry_in = (error.retry_after or 1.0) * random.uniform(1.0, 1.5)
        what = "Provider rate limit (429)"
    else:
        error.retry_in = _retry_delay(attempts, error)
        what = f"Attempt {attempts} failed"
    with transaction.atomic():
        RefundRequest.objects.filter(pk=refund.pk, connector_refund_id="").update(
            next_action_at=timezone.now() + timedelta(seconds=error.retry_in)
        )
        refund_log_append(
            refund=refund,
            event=RefundLog.Event.PROVIDER_ERROR,
            message=f"{what}, retrying in {error.retry_in:.0f}s: {error.message}",
            data={"code": error.code, "transient": True, "retry_in": round(error.retry_in, 1), **_not_sent(error)},
        )
    raise error


def _not_sent(error: TransientProviderError) -> dict:
    """Marks an attempt the adapter knows never reached the provider's create call."""
    return {"not_sent": True} if error.refund_not_sent else {}


def _claim_for_submit(refund_id: int) -> RefundRequest | None:
    now = timezone.now()
    lease = timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)
    with transaction.atomic():
        refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
        attempts = refund.submit_attempts + 1
        if refund.status == RefundStatus.APPROVED:
            refund = refund_transition(
                refund_id=refund_id,
                to_status=RefundStatus.PROCESSING,
                message=f"Submitting to {refund.provider}",
                submitted_at=now,
                call_started_at=now,
                submit_attempts=attempts,
                next_action_at=now + lease,
            )
        elif (
            refund.status == RefundStatus.PROCESSING
            and not refund.connector_refund_id
            and (refund.call_started_at is None or refund.call_started_at <= now - lease)
        ):
            # A retry, or the dispatcher after a crashed worker's lease ran out: ask again with
            # the same key. While a call is in flight (lease fresh), leave it to its worker.
            refund.submit_attempts = attempts
            refund.call_started_at = now
            refund.next_action_at = now + lease
            refund.save(update_fields=["submit_attempts", "call_started_at", "next_action_at", "updated_at"])
        else:
            return None
        refund_log_append(
            refund=refund,
            event=RefundLog.Event.PROVIDER_CALL,
            message=f"create_refund attempt {attempts}",
            data={"idempotency_key": refund.idempotency_key, "attempt": attempts},
        )
    return refund


def _fail(refund_id: int, *, code: str, message: str) -> RefundRequest:
    return refund_transition(
        refund_id=refund_id,
        to_status=RefundStatus.FAILED,
        message=f"{code}: {message}",
        data={"code": code},
        error_code=code[:64],
        error_message=message[:500],
    )


def poll_delay(poll_count: int, provider: str = "") -> timedelta:
    first = settings.REFUND_POLL_FIRST_DELAY_BY_PROVIDER.get(provider, settings.REFUND_POLL_FIRST_DELAY)
    seconds = first * (2 ** min(poll_count, 20))
    return timedelta(seconds=min(seconds, settings.REFUND_POLL_MAX_DELAY))


def refund_record_provider_result(*, refund_id: int, result: RefundResult) -> RefundRequest:
    """Record what the provider says about a refund. A final refund never moves again."""
    now = timezone.now()
    with transaction.atomic():
        refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
        refund_log_append(
            refund=refund,
            event=RefundLog.Event.PROVIDER_ANSWER,
            message=f"{result.connector_refund_id}: {result.status}",
            data={
                "connector_refund_id": result.connector_refund_id,
                "status": str(result.status),
                "amount": result.amount.as_dict(),
                "failure_code": result.failure_code,
            },
        )
        # A final refund never moves backwards; the one move on is the provider's own
        # correction of a succeeded refund that later failed (Stripe does this).
        correction = refund.status == RefundStatus.SUCCEEDED and result.status == ProviderRefundStatus.FAILED
        if refund.is_final and not correction:
            return refund
        refund.connector_refund_id = result.connector_refund_id
        refund.provider_status = str(result.status)
        refund.call_started_at = None
        refund.save(update_fields=["connector_refund_id", "provider_status", "call_started_at", "updated_at"])
        target = _PROVIDER_FINAL.get(result.status)
        if target is None:
            if refund.status != RefundStatus.PROCESSING:
                return refund_transition(
                    refund_id=refund_id,
                    to_status=RefundStatus.PROCESSING,
                    message=f"Provider reports {result.status}",
                    next_action_at=now + poll_delay(0, refund.provider),
                    poll_count=0,
                )
            refund.next_action_at = now + poll_delay(refund.poll_count, refund.provider)
            refund.save(update_fields=["next_action_at"])
            return refund
        extra = {}
        if target == RefundStatus.FAILED:
            extra = {
                "error_code": (result.failure_code or "refund_failed")[:64],
                "error_message": (result.failure_message or "The provider reported the refund failed.")[:500],
            }
        return refund_transition(
            refund_id=refund_id,
            to_status=target,
            message=f"Provider reports {result.status}",
            allow_correction=correction,
            **extra,
        )


def _flag_provider_disabled(refund: RefundRequest) -> RefundRequest | None:
    """A refund whose provider has since been switched off waits for a person, not in a loop."""
    return refund_flag_for_attention(
        refund_id=refund.pk,
        message=f"The provider {refund.provider!r} is not enabled (REFUND_PROVIDERS); enable it to go on",
        code="provider_disabled",
    )


def refund_sync_status(*, refund_id: int) -> RefundRequest | None:
    """Ask the provider where a submitted refund stands and record it."""
    refund = RefundRequest.objects.get(pk=refund_id)
    if refund.is_final or not refund.connector_refund_id:
        return None
    if refund.provider not in provider_names():
        return _flag_provider_disabled(refund)
    try:
        provider_slot_acquire(refund.provider, max_wait=settings.PROVIDER_RATE_MAX_WAIT_SECONDS)
        result = get_provider(refund.provider).get_refund(
            connector_refund_id=refund.connector_refund_id,
            connector_transaction_id=refund.connector_transaction_id,
        )
    except RateLimited:
        return refund  # the next poll comes round anyway
    except (TransientProviderError, PermanentProviderError) as error:
        with transaction.atomic():
            refund_log_append(
                refund=refund,
                event=RefundLog.Event.PROVIDER_ERROR,
                message=f"Status check failed, will poll again: {error.message}",
                data={"code": error.code},
            )
        return refund
    return refund_record_provider_result(refund_id=refund_id, result=result)


def refund_flag_for_attention(*, refund_id: int, message: str, code: str = "") -> RefundRequest | None:
    try:
        return refund_transition(
            refund_id=refund_id,
            to_status=RefundStatus.NEEDS_ATTENTION,
            message=message,
            error_code=code[:64],
            error_message=message[:500],
            next_action_at=None,
        )
    except errors.InvalidTransition:
        return None  # it moved on (e.g. a webhook finalised it): nothing to flag


def refund_retry(*, refund_id: int, actor) -> RefundRequest:
    """A person sends a refund that needed attention back to the worker (same idempotency key)."""
    if not actor.has_perm("refunds.retry_refundrequest"):
        raise errors.PermissionDenied("You may not retry refunds.")
    # Retrying a refund flagged because an earlier call's outcome is unknown (a provider without
    # idempotency keys) is the person's word that they checked the provider and found no refund.
    unknown_outcome = RefundRequest.objects.filter(pk=refund_id, error_code="unknown_outcome").exists()
    refund = refund_transition(
        refund_id=refund_id,
        to_status=RefundStatus.APPROVED,
        expected_from={RefundStatus.NEEDS_ATTENTION},
        actor=actor,
        message="Retried by a person" + (", who found no refund at the provider" if unknown_outcome else ""),
        data={"outcome_checked": True} if unknown_outcome else None,
        submit_attempts=0,  # a fresh budget of automatic attempts; the log keeps every call
        error_code="",
        error_message="",
        next_action_at=timezone.now() + timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS),
    )
    _enqueue_submit(refund.pk)
    return refund


def refund_cancel(*, refund_id: int, actor, comment: str) -> RefundRequest:
    """Cancel a refund that has not been sent to the provider."""
    refund = RefundRequest.objects.get(pk=refund_id)
    if not (actor.has_perm("refunds.retry_refundrequest") or refund.requested_by_id == actor.pk):
        raise errors.PermissionDenied("You may not cancel this refund.")
    return refund_transition(
        refund_id=refund_id,
        to_status=RefundStatus.CANCELED,
        expected_from={RefundStatus.PENDING_APPROVAL, RefundStatus.APPROVED},
        actor=actor,
        message=comment or "Canceled",
    )


# --- the dispatcher -----------------------------------------------------------------------


def refunds_dispatch_due(*, limit: int = 500) -> dict[str, list[int]]:
    """Find refunds the database says are due and hand each to one task: approved but never
    submitted (a lost message), submitted without an answer (a crashed worker), or processing
    and due for a status poll. Rows locked by another dispatcher are skipped."""
    now = timezone.now()
    give_up_before = now - timedelta(seconds=settings.REFUND_POLL_GIVE_UP_SECONDS)
    dispatched: dict[str, list[int]] = {"submit": [], "sync": [], "flagged": [], "events": []}
    with transaction.atomic():
        due = list(
            RefundRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status__in=[RefundStatus.APPROVED, RefundStatus.PROCESSING], next_action_at__lte=now)
            .order_by("next_action_at")
            .only("id", "provider", "status", "connector_refund_id", "poll_count", "submitted_at")[:limit]
        )
        for refund in due:
            if refund.status == RefundStatus.PROCESSING and refund.submitted_at and refund.submitted_at < give_up_before:
                dispatched["flagged"].append(refund.pk)
                continue
            if refund.connector_refund_id:
                refund.next_action_at = now + poll_delay(refund.poll_count + 1, refund.provider)
                refund.poll_count += 1
                refund.save(update_fields=["next_action_at", "poll_count"])
                dispatched["sync"].append(refund.pk)
                enqueue_on_commit("refund_sync_status_task", refund.pk)
            else:
                refund.next_action_at = now + timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)
                refund.save(update_fields=["next_action_at"])
                dispatched["submit"].append(refund.pk)
                enqueue_on_commit("refund_submit_task", refund.pk)
    dispatched["events"] = _dispatch_stale_events(now=now, limit=limit)
    for refund_id in dispatched["flagged"]:
        refund_flag_for_attention(
            refund_id=refund_id, message="The provider has not reported a final status in time", code="stuck_processing"
        )
    return dispatched


def _dispatch_stale_events(*, now, limit: int) -> list[int]:
    """Webhook events stored but not processed a while after they arrived (a lost message or a
    failed attempt) are offered again, up to a bound."""
    stale = list(
        WebhookEvent.objects.filter(
            processed_at__isnull=True,
            received_at__lte=now - timedelta(seconds=settings.WEBHOOK_RETRY_AFTER_SECONDS),
            attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for event_pk in stale:
        enqueue_on_commit("webhook_event_process_task", event_pk)
    return stale
