"""Filing a refund: permission, idempotent replay, the payment looked up and locked, the amount
checked against what remains, the row created through the one door, auto-approval."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid

from django.db import IntegrityError, transaction

from approvals.policy import auto_approve_threshold
from approvals.services import auto_approval_check, auto_approval_refused_note, refund_create_auto_approved
from refunds import errors, rows
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import STORED_TEXT_LOCALE, Money, format_minor
from refunds.providers.base import LineItem, PaymentInfo, TransientProviderError
from refunds.selectors import refund_approvals_known
from refunds.services.disputes import disputed_message, payment_dispute_act, payment_dispute_sync
from refunds.services.payments import (
    payment_check_amount,
    payment_info_fetch,
    payment_lock_and_refresh,
    payment_refund_sums,
    payment_refundable_remaining,
    provider_adapter,
)
from refunds.services.transitions import refund_create, refund_log_row

# Who may file a refund on a payment with an open dispute (giving dispute_override_reason):
# finance managers (refunds.roles), the people who also approve and retry refunds. Some
# disputes are settled by refunding; an agent's refund on a disputed payment is refused.
DISPUTE_OVERRIDE_PERMISSION = "refunds.override_dispute_refundrequest"

logger = logging.getLogger(__name__)


def _fingerprint(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _request_fingerprint(
    *, amount: Money | None, items: list[LineItem], reason_code: str, dispute_override_reason: str = "", **parts
) -> str:
    extra = {}
    if dispute_override_reason:  # only then, like items
        extra["dispute_override_reason"] = dispute_override_reason
    if items:  # only then, so requests filed before items existed still replay
        extra["items"] = [item.as_dict() for item in items]
    if reason_code:
        extra["reason_code"] = reason_code
    return _fingerprint(amount=amount.as_dict() if amount else None, **parts, **extra)


def refund_request_fingerprint(
    *, provider: str, connector_transaction_id: str, amount: Money | None, reason: str, metadata: dict, product: str,
    requested_by, reason_code: str,
) -> str:
    """What `refund_request_create` stores to tell a replay from a conflict, for a request
    without items or a dispute override (the batch dry run asks it of rows whose
    merchant_refund_id is already taken; a batch row has neither)."""
    return _request_fingerprint(
        provider=provider, connector_transaction_id=connector_transaction_id, amount=amount, reason=reason,
        metadata=metadata, product=product, requested_by=requested_by.pk, items=[], reason_code=reason_code,
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
    dispute_override_reason: str = "",
) -> tuple[RefundRequest, bool]:
    """File a refund. Returns (refund, created): a replay of the same request returns the
    existing refund with created=False; a new one comes with its approvals loaded (intake made
    them). `items` (invoice lines, for providers that take them) must add up to the amount;
    without an amount their total is the amount. A payment with an open dispute: see
    _refuse_if_disputed."""
    if not requested_by.has_perm("refunds.add_refundrequest"):
        raise errors.PermissionDenied("You may not file refund requests.")
    items = list(items or [])
    dispute_override_reason = (dispute_override_reason or "").strip()
    fingerprint = _request_fingerprint(
        provider=provider, connector_transaction_id=connector_transaction_id, amount=amount, reason=reason,
        metadata=metadata, product=product, requested_by=requested_by.pk, items=items, reason_code=reason_code,
        dispute_override_reason=dispute_override_reason,
    )
    replay = _replay(merchant_refund_id=merchant_refund_id, fingerprint=fingerprint)
    if replay is not None:
        return replay, False
    adapter = provider_adapter(provider)
    if items:
        amount = _check_items_supported(adapter=adapter, items=items, amount=amount)
    info = _payment_info_or_unverified(
        adapter=adapter, provider=provider, connector_transaction_id=connector_transaction_id, amount=amount
    )
    _refuse_if_disputed(provider=provider, connector_transaction_id=connector_transaction_id, info=info,
                        requested_by=requested_by, override_reason=dispute_override_reason)
    return _file_or_replay(
        merchant_refund_id=merchant_refund_id,
        provider=provider,
        connector_transaction_id=connector_transaction_id,
        amount=amount,
        info=info,
        items=items,
        fingerprint=fingerprint,
        requested_by=requested_by,
        reason=reason,
        reason_code_id=reason_code or None,
        metadata=metadata,
        product=product,
        dispute_override_reason=dispute_override_reason,
    )


def _file_or_replay(*, merchant_refund_id: str, fingerprint: str, **fields) -> tuple[RefundRequest, bool]:
    try:
        with transaction.atomic():
            refund = _refund_file(merchant_refund_id=merchant_refund_id, fingerprint=fingerprint, **fields)
    except IntegrityError:
        # Another request with this merchant_refund_id won the race: same body replays it.
        replay = _replay(merchant_refund_id=merchant_refund_id, fingerprint=fingerprint)
        if replay is None:
            raise
        return replay, False
    if refund.dispute_overridden:
        payment_dispute_act(payment_id=refund.payment_id)  # the others on the payment are held
    return refund, True


def _refuse_if_disputed(*, provider, connector_transaction_id, info: PaymentInfo | None, requested_by,
                        override_reason: str) -> None:
    """A payment with an open dispute is refused (PaymentDisputed, 422 payment_disputed) and its
    refunds still waiting or approved go to needs_attention, unless `override_reason` is given by
    someone with DISPUTE_OVERRIDE_PERMISSION: then the refund is filed, exempt from that dispute,
    and the reason is logged (_refund_file)."""
    if info is None or info.dispute is None or not info.dispute.is_open:
        return
    _check_dispute_override(requested_by=requested_by, reason=override_reason)
    if not override_reason:
        # The news stays (the payment row, the other refunds held) though this one is refused.
        payment = payment_dispute_sync(provider=provider, connector_transaction_id=connector_transaction_id, info=info)
        raise errors.PaymentDisputed(disputed_message(payment), field="connector_transaction_id")


def _check_dispute_override(*, requested_by, reason: str) -> None:
    if reason and not requested_by.has_perm(DISPUTE_OVERRIDE_PERMISSION):
        raise errors.PermissionDenied(
            "Only a finance manager may file a refund on a disputed payment.", field="dispute_override_reason"
        )


def _payment_info_or_unverified(*, adapter, provider: str, connector_transaction_id: str, amount) -> PaymentInfo | None:
    """The payment as its provider knows it; None (accepted unverified) when the provider cannot
    be reached and an amount was given."""
    try:
        return payment_info_fetch(
            adapter=adapter, provider=provider, connector_transaction_id=connector_transaction_id, show_code=True
        )
    except TransientProviderError:
        # Accept now; the payment is checked again before anything is executed.
        logger.warning("payment lookup failed for %s %s; accepting unverified", provider, connector_transaction_id)
        if amount is None:
            raise errors.ProviderUnavailable(
                f"{provider} cannot be reached to look up the payment's amount; give an amount or retry later.",
                field="amount",
            ) from None
        return None


def _refund_file(
    *,
    provider,
    connector_transaction_id,
    amount,
    info,
    items,
    fingerprint,
    requested_by,
    product,
    dispute_override_reason,
    **fields,
) -> RefundRequest:
    """Inside the caller's transaction: lock the payment, settle and check the amount, create
    the row, approved at once at or under the threshold (_refund_create_judged)."""
    payment = payment_lock_and_refresh(provider=provider, connector_transaction_id=connector_transaction_id, info=info)
    overridden = ""
    if payment.dispute_open:
        # Known from the row (a webhook), also when the provider could not be asked just now.
        _check_dispute_override(requested_by=requested_by, reason=dispute_override_reason)
        if not dispute_override_reason:
            raise errors.PaymentDisputed(disputed_message(payment), field="connector_transaction_id")
        overridden = payment.dispute_id
    # What the payment's refunds add up to, the auto-approved part in the refund's currency
    # included: one statement, read once under the lock for the amount's checks and the policy.
    sums = payment_refund_sums(payment=payment, auto_approved_currency=amount.currency if amount else payment.currency)
    if amount is None:
        remaining = payment_refundable_remaining(payment=payment, sums=sums)
        if not remaining or remaining <= 0:
            raise errors.AmountExceedsRefundable("Nothing remains refundable on this payment.", field="amount")
        amount = Money(remaining, payment.currency)
    if items:
        _check_items_add_up(items=items, amount=amount)
    payment_check_amount(payment=payment, amount=amount, sums=sums)
    notes = [_override_note(payment=payment, actor=requested_by, reason=dispute_override_reason)] if overridden else []
    return _refund_create_judged(
        amount=amount,
        payment=payment,
        auto_approved_on_payment=sums.auto_approved,
        notes=notes,
        actor=requested_by,
        # Stored and read later by anyone: one fixed notation, not the filer's language.
        message=f"Requested {format_minor(amount.minor_amount, amount.currency, STORED_TEXT_LOCALE)} on "
        f"{connector_transaction_id}",
        data={"payment_verified": info is not None},
        provider=provider,
        connector_transaction_id=connector_transaction_id,
        items=[item.as_dict() for item in items],
        product=product or payment.product,
        requested_by=requested_by,
        request_fingerprint=fingerprint,
        idempotency_key=f"refundoffice-{uuid.uuid4().hex}",
        payment_verified=info is not None,
        dispute_overridden=overridden,
        **fields,
    )


def _refund_create_judged(
    *, amount: Money, payment, auto_approved_on_payment: int, notes: list, **create
) -> RefundRequest:
    """Create the refund (transitions.refund_create's arguments) with the approval policy's answer:
    at or under the threshold the policy is asked before the row is made, under the payment's
    lock taken by the caller (it counts the payment's other refunds), so an approved refund is
    inserted approved; a refused one gets a note saying why. `auto_approved_on_payment`: the
    payment's auto-approved sum, read by the caller under that lock (payment_refund_sums). The
    refund comes back with its approvals loaded (the API's answer shows them)."""
    threshold = auto_approve_threshold(amount.currency)
    refusal = None  # over the threshold: the policy is not asked
    if amount.minor_amount <= threshold:
        refusal = auto_approval_check(
            payment=payment, amount=amount, threshold=threshold, on_payment_already=auto_approved_on_payment
        )
    if refusal:
        notes = [*notes, auto_approval_refused_note(refusal)]
    create.update(
        payment=payment, amount_minor=amount.minor_amount, currency=amount.currency, notes=notes,
        status=RefundStatus.PENDING_APPROVAL,
    )
    if refusal == "":
        refund, approval = refund_create_auto_approved(threshold=threshold, **create)
        refund_approvals_known(refund, [approval])
    else:
        refund = refund_create(**create)
        refund_approvals_known(refund, [])
    return refund


def _override_note(*, payment, actor, reason: str) -> RefundLog:
    return refund_log_row(
        event=RefundLog.Event.NOTE,
        actor=actor,
        message=f"Filed despite the open dispute {payment.dispute_id} on {payment.connector_transaction_id}: {reason}",
        data={"code": "dispute_override", "dispute": payment.dispute_id, "reason": reason},
    )


def _check_items_supported(*, adapter, items: list[LineItem], amount: Money | None) -> Money | None:
    """Refuse items the provider cannot take; without an amount, the items' total is the amount."""
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
    if amount is None:
        return Money(sum(item.total_minor for item in items), items[0].cost.currency)
    return amount


def _check_items_add_up(*, items: list[LineItem], amount: Money) -> None:
    """Checked with the amount, once the payment is known (like the amount's own checks)."""
    if {item.cost.currency for item in items} != {amount.currency}:
        raise errors.RefundValidationError(
            f"Every item's cost must be in {amount.currency}.", field="items", code="items_mismatch"
        )
    total = sum(item.total_minor for item in items)
    if total != amount.minor_amount:
        raise errors.RefundValidationError(
            f"The items add up to {format_minor(total, amount.currency)}, not the amount "
            f"{format_minor(amount.minor_amount, amount.currency)}.",
            field="items",
            code="items_mismatch",
        )


def _replay(*, merchant_refund_id: str, fingerprint: str) -> RefundRequest | None:
    # Asked of every request, and almost always answered "no such refund": the id and the
    # fingerprint only, in hand-written SQL (refunds.rows says why); the row itself only for a replay.
    existing = rows.fetch_one(
        f"SELECT id, request_fingerprint FROM {rows.table(RefundRequest)} WHERE merchant_refund_id = %s",
        [merchant_refund_id],
    )
    if existing is None:
        return None
    if existing[1] != fingerprint:
        raise errors.IdempotencyConflict(
            f"merchant_refund_id {merchant_refund_id!r} was already used for a different request.",
            field="merchant_refund_id",
        )
    return RefundRequest.objects.get(pk=existing[0])
