"""A person closes a refund the system handed to them (needs_attention), in one of two ways:

- "found at the provider": they found the provider's refund; we look it up there, check that it
  belongs to this refund (same payment, same amount, not another refund's), record its id and
  from then on follow the provider's status;
- "nothing was refunded": they checked and the provider made no refund; the refund fails. Where
  the provider can tell otherwise (a refund of ours listed on the payment, or more refunded than
  our records account for), we refuse.

Both need the retry permission and a comment, and both land in the refund's log with the person's
name. The provider is asked before the database transaction, as everywhere.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from refunds import errors
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money, format_minor
from refunds.providers.base import (
    PermanentProviderError,
    ProviderRefundStatus,
    RefundResult,
    TransientProviderError,
)
from refunds.providers.base import TransactionNotFound as ProviderTransactionNotFound
from refunds.services.execution import refund_record_provider_result
from refunds.services.payments import payment_refund_sums, provider_adapter
from refunds.services.transitions import refund_log_append, refund_transition
from refunds.text import TRANSACTION_ID


def _check_resolver(*, refund_id: int, actor, comment: str) -> RefundRequest:
    if not actor.has_perm("refunds.retry_refundrequest"):
        raise errors.PermissionDenied("You may not resolve refunds by hand.")
    if not (comment or "").strip():
        raise errors.RefundValidationError("Say how you checked (a comment is required).", field="comment")
    refund = RefundRequest.objects.get(pk=refund_id)
    if refund.status != RefundStatus.NEEDS_ATTENTION:
        raise errors.InvalidTransition(
            f"Refund {refund} is {refund.get_status_display().lower()}; only refunds that need attention are "
            "resolved by hand."
        )
    return refund


def _provider_refund_lookup(*, refund: RefundRequest, connector_refund_id: str) -> RefundResult:
    adapter = provider_adapter(refund.provider)
    try:
        return adapter.get_refund(
            connector_refund_id=connector_refund_id, connector_transaction_id=refund.connector_transaction_id
        )
    except ProviderTransactionNotFound:
        raise errors.TransactionNotFound(
            f"{refund.provider} has no refund {connector_refund_id}.", field="connector_refund_id"
        ) from None
    except TransientProviderError as error:
        raise errors.ProviderUnavailable(
            f"{refund.provider} did not answer ({error.message}); nothing was changed, try again in a moment."
        ) from None
    except PermanentProviderError as error:
        raise errors.RefundValidationError(
            f"{refund.provider} refused the lookup: {error.message}", field="connector_refund_id"
        ) from None


def _contradiction(*, refund: RefundRequest, found: RefundResult) -> str:
    """Why the provider's refund cannot be this refund's, or ""."""
    if found.connector_transaction_id and found.connector_transaction_id != refund.connector_transaction_id:
        return f"it belongs to payment {found.connector_transaction_id}, not {refund.connector_transaction_id}"
    if found.merchant_refund_id and found.merchant_refund_id != refund.merchant_refund_id:
        return f"it was made for our refund {found.merchant_refund_id}"
    wanted = Money(refund.amount_minor, refund.currency)
    if found.amount != wanted:
        return (
            f"it is {format_minor(found.amount.minor_amount, found.amount.currency)}, this refund is "
            f"{format_minor(wanted.minor_amount, wanted.currency)}"
        )
    holder = (
        RefundRequest.objects.filter(provider=refund.provider, connector_refund_id=found.connector_refund_id)
        .exclude(pk=refund.pk)
        .values_list("merchant_refund_id", flat=True)
        .first()
    )
    if holder:
        return f"refund {holder} already records it"
    return ""


def refund_resolve_found(*, refund_id: int, actor, connector_refund_id: str, comment: str) -> RefundRequest:
    """The person found the provider's refund: record it and follow its status."""
    refund = _check_resolver(refund_id=refund_id, actor=actor, comment=comment)
    connector_refund_id = (connector_refund_id or "").strip()
    if not TRANSACTION_ID.match(connector_refund_id):
        raise errors.RefundValidationError(
            "Enter the provider's refund id (letters, digits, _ and - only).", field="connector_refund_id"
        )
    found = _provider_refund_lookup(refund=refund, connector_refund_id=connector_refund_id)
    problem = _contradiction(refund=refund, found=found)
    if problem:
        raise errors.RefundValidationError(
            f"{found.connector_refund_id} at {refund.provider} is not this refund: {problem}.",
            field="connector_refund_id",
        )
    with transaction.atomic():
        refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
        if refund.status != RefundStatus.NEEDS_ATTENTION:
            raise errors.InvalidTransition(f"Refund {refund} moved on to {refund.status} meanwhile; nothing changed.")
        refund_log_append(
            refund=refund,
            event=RefundLog.Event.NOTE,
            actor=actor,
            message=f"Resolved by hand: found {found.connector_refund_id} at {refund.provider} "
            f"({found.status}): {comment.strip()}",
            data={"resolution": "found", "connector_refund_id": found.connector_refund_id},
        )
        refund.outcome_checked_at = timezone.now()
        refund.error_code = ""
        refund.error_message = ""
        refund.save(update_fields=["outcome_checked_at", "error_code", "error_message", "updated_at"])
        return refund_record_provider_result(refund_id=refund_id, result=found)


def _refund_seen_at_provider(*, refund: RefundRequest) -> str:
    """What the provider shows that says a refund was made for this refund, or ""."""
    adapter = provider_adapter(refund.provider)
    try:
        if adapter.lists_refunds:
            for result in adapter.list_refunds(connector_transaction_id=refund.connector_transaction_id):
                if result.merchant_refund_id == refund.merchant_refund_id and result.status not in (
                    ProviderRefundStatus.FAILED,
                    ProviderRefundStatus.CANCELED,
                ):
                    return (
                        f"{refund.provider} lists {result.connector_refund_id} ({result.status}) made for this refund; "
                        "record it with \"found at the provider\" instead"
                    )
            return ""
        info = adapter.get_payment(connector_transaction_id=refund.connector_transaction_id)
    except TransientProviderError as error:
        raise errors.ProviderUnavailable(
            f"{refund.provider} did not answer ({error.message}); nothing was changed, try again in a moment."
        ) from None
    except PermanentProviderError:
        return ""  # the provider cannot tell: the person's word stands
    ours = payment_refund_sums(payment=refund.payment, exclude_refund_id=refund.pk).known_at_provider
    if info.amount_refunded > ours:
        return (
            f"{refund.provider} reports {format_minor(info.amount_refunded, info.amount.currency)} refunded on the "
            f"payment, more than our other refunds account for ({format_minor(ours, info.amount.currency)}); find "
            "that refund and record it with \"found at the provider\""
        )
    return ""


def refund_resolve_not_refunded(*, refund_id: int, actor, comment: str) -> RefundRequest:
    """The person confirmed the provider made no refund: the refund fails, with their word."""
    refund = _check_resolver(refund_id=refund_id, actor=actor, comment=comment)
    contradiction = _refund_seen_at_provider(refund=refund)
    if contradiction:
        raise errors.RefundValidationError(f"Not failed: {contradiction}.")
    return refund_transition(
        refund_id=refund_id,
        to_status=RefundStatus.FAILED,
        expected_from={RefundStatus.NEEDS_ATTENTION},
        actor=actor,
        message=f"Resolved by hand: nothing was refunded at {refund.provider}: {comment.strip()}",
        data={"resolution": "not_refunded"},
        error_code="resolved_not_refunded",
        error_message=f"A person confirmed nothing was refunded: {comment.strip()}"[:500],
        unconfirmed_calls=0,
        outcome_checked_at=timezone.now(),
        next_action_at=None,
    )
