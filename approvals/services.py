"""Approval decisions. Permission and maker-checker are enforced here, not in the interfaces."""

import hashlib

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from approvals.models import Approval
from approvals.policy import (
    UNLIMITED,
    approver_limit,
    auto_approve_refusal_for,
)
from refunds import errors
from refunds.models import Payment, RefundLog, RefundRequest, RefundStatus
from refunds.money import STORED_TEXT_LOCALE, Money, format_minor
from refunds.services.execution import refund_create_approved, refund_mark_approved
from refunds.services.transitions import refund_log_append, refund_log_row, refund_transition

ALREADY_APPROVED = "You have already approved this refund; it needs someone else."
AUTO_APPROVED_MESSAGE = "Auto-approved: at or under the threshold"


def _check_decider(*, refund: RefundRequest, approver) -> None:
    if not approver.has_perm("refunds.approve_refundrequest"):
        raise errors.PermissionDenied("Only finance managers may approve or reject refunds.")
    if refund.requested_by_id == approver.pk:
        raise errors.PermissionDenied(
            "Nobody approves or rejects a refund they requested.", code="self_approval_forbidden"
        )
    if refund.status != RefundStatus.PENDING_APPROVAL:
        raise errors.InvalidTransition(
            f"Refund {refund} is {refund.status}, not awaiting approval.", code="not_awaiting_approval"
        )
    # One person never counts twice: an approver who approved at a lower tier has decided, and a
    # rejection (or another approval) must come from someone else. (On a refund still awaiting
    # approval a person's decision can only be an approval: a rejection ends the wait.)
    if refund.approvals.filter(approver=approver).exists():
        raise errors.InvalidTransition(ALREADY_APPROVED, code="already_approved")


def _customer_lock(*, provider: str, customer: str) -> None:
    """Serialise auto-approvals of one customer's payments (a transaction-scoped PostgreSQL
    advisory lock; SQLite lets one writer in at a time anyway). Always taken after the payment's
    row lock, in that order, so two intakes never wait on each other in a circle."""
    if not customer or connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(f"refundoffice:customer:{provider}:{customer}".encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])


def auto_approval_check(*, payment: Payment, amount: Money, threshold: int, on_payment_already: int | None = None) -> str:
    """For intake, before the refund's row exists: "" when a refund of `amount` on `payment` is
    approved at once, else why not (approvals.policy.auto_approve_refusal_for). The caller holds
    the payment's row lock in its open transaction; the customer's is taken here, after it."""
    if settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY:
        _customer_lock(provider=payment.provider, customer=payment.customer)
    return auto_approve_refusal_for(
        amount=amount, payment=payment, threshold=threshold, on_payment_already=on_payment_already
    )


def auto_approval_refused_note(refusal: str) -> RefundLog:
    """The log row (not saved, for refund_create's notes) that says why a refund under the
    threshold waits."""
    return refund_log_row(
        event=RefundLog.Event.NOTE, message=f"Waits for a finance manager: {refusal}",
        data={"auto_approve": "refused"},
    )


def refund_create_auto_approved(*, threshold: int, **create) -> tuple[RefundRequest, Approval]:
    """File a refund auto_approval_check approved, in the caller's transaction (which holds the
    locks the check was made under): inserted approved, its log saying it was requested and then
    auto-approved, the approval recorded, the worker told (execution.refund_create_approved).
    `create`: transitions.refund_create's arguments. Returns the refund and its approval."""
    approvals = []
    refund = refund_create_approved(
        approve_message=AUTO_APPROVED_MESSAGE,
        approval=lambda refund: approvals.append(_auto_approval_record(refund=refund, threshold=threshold)),
        **create,
    )
    return refund, approvals[0]


def _auto_approval_record(*, refund: RefundRequest, threshold: int) -> Approval:
    return Approval.objects.create(
        refund=refund,
        decision=Approval.Decision.AUTO_APPROVED,
        comment=f"At or under the auto-approve threshold of "
        f"{format_minor(threshold, refund.currency, STORED_TEXT_LOCALE)}",
    )


def refund_approve(*, refund_id: int, approver, comment: str = "") -> RefundRequest:
    """Record `approver`'s approval. The refund is approved once an approval's limit covers its
    amount; an approver whose limit is lower records a tier and the refund waits for the next."""
    try:
        with transaction.atomic():
            refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
            _check_decider(refund=refund, approver=approver)
            limit = approver_limit(approver, refund.currency)
            if limit <= 0:
                raise errors.PermissionDenied(
                    f"You have no approval limit for {refund.currency}.", code="approval_limit_missing"
                )
            tier = refund.approvals.filter(decision=Approval.Decision.APPROVED).count() + 1
            Approval.objects.create(
                refund=refund,
                approver=approver,
                decision=Approval.Decision.APPROVED,
                comment=comment,
                tier=tier,
                limit_minor=min(limit, UNLIMITED),
            )
            # Limits do not add up, and an earlier tier's limit was below the amount (else it
            # would have approved it; an amount never changes): this approval covers it or none does.
            if limit >= refund.amount_minor:
                return refund_mark_approved(
                    refund_id=refund.pk, actor=approver, message=f"Approved: {comment}" if comment else "Approved"
                )
            refund_log_append(
                refund=refund,
                event=RefundLog.Event.NOTE,
                actor=approver,
                message=(
                    f"Approved at tier {tier} "
                    f"(limit {format_minor(limit, refund.currency, STORED_TEXT_LOCALE)}); "
                    f"needs an approver whose limit covers "
                    f"{format_minor(refund.amount_minor, refund.currency, STORED_TEXT_LOCALE)}"
                ),
            )
            return refund
    except IntegrityError:
        # Two requests of the same approver at once: the constraint saw the second.
        raise errors.InvalidTransition(ALREADY_APPROVED, code="already_approved") from None


def refund_reject(*, refund_id: int, approver, comment: str) -> RefundRequest:
    comment = (comment or "").strip()
    if not comment:
        raise errors.RefundValidationError("A rejection needs a reason.", field="comment", code="comment_required")
    with transaction.atomic():
        refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
        _check_decider(refund=refund, approver=approver)
        Approval.objects.create(refund=refund, approver=approver, decision=Approval.Decision.REJECTED, comment=comment)
        return refund_transition(
            refund_id=refund.pk, to_status=RefundStatus.REJECTED, actor=approver, message=f"Rejected: {comment}"
        )
