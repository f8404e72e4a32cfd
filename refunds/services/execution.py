"""Approved refunds at their provider: claim, call, record the answer, poll, retry, cancel.

A provider is never called inside a database transaction: the claim commits "processing" with
a lease, the call runs outside, the answer is recorded in a new short transaction. Every create
call carries the refund's idempotency key; for providers without idempotent creates, the
refund's `unconfirmed_calls` says whether an earlier call may already have refunded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from refunds import errors, rows
from refunds.dbconn import connection_release_before_wait
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers import get_provider, provider_names
from refunds.providers.base import (
    LineItem,
    PermanentProviderError,
    ProviderRefundStatus,
    RefundResult,
    TransientProviderError,
)
from refunds.providers.base import TransactionNotFound as ProviderTransactionNotFound
from refunds.publish import enqueue_on_commit
from refunds.ratelimit import RateLimited, provider_slot_acquire
from refunds.services.disputes import DISPUTE_CODE, refund_hold_after_refusal
from refunds.services.payments import payment_check_amount, payment_count_refund_succeeded, payment_lock_and_refresh
from refunds.services.transitions import Onward, refund_create, refund_flag_for_attention, refund_log_append
from refunds.services.transitions import refund_log_row, refund_transition
from refunds.services.unconfirmed import unconfirmed_call_lookup

_PROVIDER_FINAL = {
    ProviderRefundStatus.SUCCEEDED: RefundStatus.SUCCEEDED,
    ProviderRefundStatus.FAILED: RefundStatus.FAILED,
    ProviderRefundStatus.CANCELED: RefundStatus.CANCELED,
}


def refund_mark_approved(*, refund_id: int, actor=None, message: str = "", locked: RefundRequest | None = None) -> RefundRequest:
    """pending_approval → approved, and hand it to the worker. Called by approvals.services.
    `locked`: the row, when the caller holds its lock (refund_transition's `locked`)."""
    refund = refund_transition(
        refund_id=refund_id, locked=locked, to_status=RefundStatus.APPROVED, actor=actor, message=message,
        **_approved_fields(timezone.now()),
    )
    enqueue_on_commit("refund_submit_task", refund.pk)
    return refund


def refund_create_approved(*, approve_message: str, approval: Callable[[RefundRequest], object], **create) -> RefundRequest:
    """A new refund approved at once (intake's auto-approval), handed to the worker: created
    (transitions.refund_create's arguments) and moved pending_approval → approved as
    refund_mark_approved moves it, in the creating INSERT; approved the instant it was made.
    `approval(refund)` records the approval, between the two announcements."""
    now = timezone.now()
    refund = refund_create(
        **create,
        created_at=now,
        onward=Onward(to_status=RefundStatus.APPROVED, message=approve_message, fields=_approved_fields(now),
                      between=approval),
    )
    enqueue_on_commit("refund_submit_task", refund.pk)
    return refund


def _approved_fields(now) -> dict:
    return {"approved_at": now, "next_action_at": now + timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)}


def _verify_payment_before_submit(refund: RefundRequest) -> None:
    """A refund accepted while the provider was unreachable is checked before it is executed."""
    info = get_provider(refund.provider).get_payment(connector_transaction_id=refund.connector_transaction_id)
    with transaction.atomic():
        payment = payment_lock_and_refresh(provider=refund.provider, connector_transaction_id=refund.connector_transaction_id, info=info)
        payment_check_amount(payment=payment, amount=Money(refund.amount_minor, refund.currency), exclude_refund_id=refund.pk)
        RefundRequest.objects.filter(pk=refund.pk).update(payment_verified=True)
        refund_log_append(refund=refund, event=RefundLog.Event.NOTE, message="Payment verified at the provider")


def refund_submit(*, refund_id: int) -> RefundRequest | None:
    """Execute an approved refund at its provider. Safe to run any number of times, at once:
    the claim is a locked transition and the provider call carries the refund's idempotency key.
    Raises TransientProviderError for the task to retry."""
    refund = rows.get(RefundRequest, refund_id)
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
    # This claim's call is counted already; another unconfirmed one (since a person last
    # checked) may have refunded without our hearing of it. A provider without idempotent
    # creates would refund again, and one whose key may have been forgotten too: look first.
    lookup = unconfirmed_call_lookup(adapter=adapter, refund=refund) if refund.unconfirmed_calls > 1 else None
    if lookup is not None:
        handled, outcome = _resolve_unconfirmed_call(lookup=lookup, refund=refund)
        if handled:
            return outcome
    connection_release_before_wait()  # the claim is committed; the call is a wait on the network
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
        if error.code == DISPUTE_CODE:
            return refund_hold_after_refusal(refund=refund, error=error)
        return _fail(refund_id, code=error.code, message=error.message)
    return refund_record_provider_result(refund_id=refund_id, result=result)


def _resolve_unconfirmed_call(*, lookup, refund: RefundRequest) -> tuple[bool, RefundRequest | None]:
    """After an unconfirmed call that the provider's key cannot be relied on for: record the
    refund that call made (`lookup()` finds it), or flag the refund when that cannot be told.
    (False, None) means no earlier refund was found and creating is safe."""
    try:
        earlier = lookup()
    except TransientProviderError as error:
        return True, _after_transient_submit_error(refund, error)
    except PermanentProviderError as error:
        return True, refund_flag_for_attention(
            refund_id=refund.pk,
            message=f"Cannot tell whether an earlier attempt refunded at {refund.provider}, so not "
            f"asking again; check there ({error.message}). If it made no refund, Retry sends it",
            code="unknown_outcome",
        )
    if earlier is None:
        return False, None
    with transaction.atomic():
        refund_log_append(
            refund=refund,
            event=RefundLog.Event.NOTE,
            message=f"An earlier attempt made {earlier.connector_refund_id}; recording it, not refunding again",
        )
    return True, refund_record_provider_result(refund_id=refund.pk, result=earlier)


def _retry_delay(attempt: int, error: TransientProviderError) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After wins when it is longer."""
    ceiling = min(settings.REFUND_RETRY_BACKOFF_MAX, settings.REFUND_RETRY_BACKOFF_BASE * 2 ** (attempt - 1))
    return max(random.uniform(ceiling / 2, ceiling), error.retry_after or 0)


def _after_transient_submit_error(refund: RefundRequest, error: TransientProviderError) -> RefundRequest | None:
    """Log the failed attempt; flag the refund for a person when the attempts are used up, else
    raise with `retry_in` set so the task retries then (the row says so too, for the dispatcher)."""
    attempts = refund.submit_attempts
    throttled = error.code == "rate_limit"  # the provider's 429: wait as told, not a failure
    not_sent = error.refund_not_sent
    # The call is over: a retry (or the dispatcher) may call again without waiting for the lease.
    # A call that never reached the provider's create cannot have refunded: it is not unconfirmed.
    RefundRequest.objects.filter(pk=refund.pk).update(
        call_started_at=None, **({"unconfirmed_calls": F("unconfirmed_calls") - 1} if not_sent else {})
    )
    not_sent_data = {"not_sent": True} if not_sent else {}
    if throttled:
        attempts -= 1
        RefundRequest.objects.filter(pk=refund.pk).update(submit_attempts=attempts)
    elif attempts >= settings.REFUND_SUBMIT_MAX_ATTEMPTS:
        with transaction.atomic():
            refund_log_append(
                refund=refund,
                event=RefundLog.Event.PROVIDER_ERROR,
                message=f"Attempt {attempts} failed, no attempts left: {error.message}",
                data={"code": error.code, "transient": True, **not_sent_data},
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
            data={"code": error.code, "transient": True, "retry_in": round(error.retry_in, 1), **not_sent_data},
        )
    raise error


def _claim_for_submit(refund_id: int) -> RefundRequest | None:
    """Take the refund for one create call (a lease), counting the call as unconfirmed until
    its answer is recorded; None when another worker holds it or it moved on."""
    lease = timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)
    with transaction.atomic():
        refund = rows.get_locked(RefundRequest, refund_id)
        now = timezone.now()  # once the row is ours: waiting for a pooled connection or the lock is not the call
        attempts = refund.submit_attempts + 1
        if attempts > settings.REFUND_SUBMIT_MAX_ATTEMPTS:
            # The budget is spent: the last attempt's failure hands the refund to a person. A
            # dispatcher sweep after a lapsed lease must not add a call beyond it.
            return None
        call_log = refund_log_row(refund=refund, event=RefundLog.Event.PROVIDER_CALL,
                                  message=f"Asking {refund.provider} to refund (attempt {attempts})",
                                  data={"idempotency_key": refund.idempotency_key, "attempt": attempts})
        if refund.status == RefundStatus.APPROVED:
            return refund_transition(
                refund_id=refund_id,
                locked=refund,
                to_status=RefundStatus.PROCESSING,
                message=f"Submitting to {refund.provider}",
                logs_after=[call_log],
                submitted_at=now,
                call_started_at=now,
                submit_attempts=attempts,
                next_action_at=now + lease,
                unconfirmed_calls=refund.unconfirmed_calls + 1,
            )
        if (
            refund.status == RefundStatus.PROCESSING
            and not refund.connector_refund_id
            and (refund.call_started_at is None or refund.call_started_at <= now - lease)
        ):
            # A retry, or the dispatcher after a crashed worker's lease ran out: ask again with
            # the same key. While a call is in flight (lease fresh), leave it to its worker.
            refund.submit_attempts = attempts
            refund.call_started_at = now
            refund.next_action_at = now + lease
            refund.unconfirmed_calls += 1
            refund.save(
                update_fields=["submit_attempts", "call_started_at", "next_action_at", "unconfirmed_calls", "updated_at"]
            )
            call_log.save()
            return refund
    return None


def _fail(refund_id: int, *, code: str, message: str) -> RefundRequest:
    return refund_transition(
        refund_id=refund_id,
        to_status=RefundStatus.FAILED,
        message=f"{code}: {message}",
        data={"code": code},
        error_code=code[:64],
        error_message=message[:500],
        unconfirmed_calls=0,  # the provider answered (or was never asked): nothing is unknown
    )


def poll_delay(poll_count: int, provider: str = "") -> timedelta:
    first = settings.REFUND_POLL_FIRST_DELAY_BY_PROVIDER.get(provider, settings.REFUND_POLL_FIRST_DELAY)
    seconds = first * (2 ** min(poll_count, 20))
    return timedelta(seconds=min(seconds, settings.REFUND_POLL_MAX_DELAY))


def refund_record_provider_result(*, refund_id: int, result: RefundResult) -> RefundRequest:
    """Record what the provider says about a refund. A final refund never moves again."""
    now = timezone.now()
    with transaction.atomic():
        refund = rows.get_locked(RefundRequest, refund_id)
        answer_log = refund_log_row(
            refund=refund,
            event=RefundLog.Event.PROVIDER_ANSWER,
            message=f"{refund.provider} answered: refund {result.connector_refund_id} {result.status}",
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
            answer_log.save()
            return refund
        # The provider's refund is known: no call is in doubt (unconfirmed_calls 0).
        known = {"connector_refund_id": result.connector_refund_id, "provider_status": str(result.status),
                 "call_started_at": None, "unconfirmed_calls": 0}
        target = _PROVIDER_FINAL.get(result.status)
        if target is None:
            answer_log.save()
            for name, value in known.items():
                setattr(refund, name, value)
            refund.save(update_fields=[*known, "updated_at"])
            return _record_still_pending(refund=refund, result=result, now=now)
        if target == RefundStatus.FAILED:
            known["error_code"] = (result.failure_code or "refund_failed")[:64]
            known["error_message"] = (result.failure_message or "The provider reported the refund failed.")[:500]
        # One UPDATE (what the provider said, and the move) and one INSERT (its answer, the move).
        moved = refund_transition(
            refund_id=refund_id,
            locked=refund,
            to_status=target,
            message=f"Provider reports {result.status}",
            allow_correction=correction,
            logs_before=[answer_log],
            **known,
        )
        if target == RefundStatus.SUCCEEDED:
            payment_count_refund_succeeded(refund=moved)
        return moved


def _record_still_pending(*, refund: RefundRequest, result: RefundResult, now) -> RefundRequest:
    """Not final at the provider yet: processing, polled again later."""
    if refund.status != RefundStatus.PROCESSING:
        return refund_transition(
            refund_id=refund.pk,
            to_status=RefundStatus.PROCESSING,
            message=f"Provider reports {result.status}",
            next_action_at=now + poll_delay(0, refund.provider),
            poll_count=0,
        )
    refund.next_action_at = now + poll_delay(refund.poll_count, refund.provider)
    refund.save(update_fields=["next_action_at"])
    return refund


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


def refund_retry(*, refund_id: int, actor, comment: str = "") -> RefundRequest:
    """A person sends a refund that needed attention back to the worker (same idempotency key);
    their comment goes into the log with it."""
    if not actor.has_perm("refunds.retry_refundrequest"):
        raise errors.PermissionDenied("You may not retry refunds.")
    # Retrying a refund flagged because an earlier call's outcome is unknown (a provider without
    # idempotency keys) is the person's word that they checked the provider and found no refund.
    never_approved = RefundRequest.objects.filter(
        pk=refund_id, status=RefundStatus.NEEDS_ATTENTION, approved_at__isnull=True, submitted_at__isnull=True,
        submit_attempts=0,
    )
    if never_approved.exists():
        # Flagged while it waited for approval (a dispute opened): it goes back to the approvers,
        # never straight to the provider. (A refund that was ever sent was approved first.)
        return refund_transition(
            refund_id=refund_id,
            to_status=RefundStatus.PENDING_APPROVAL,
            expected_from={RefundStatus.NEEDS_ATTENTION},
            actor=actor,
            message="Sent back for approval by a person" + (f": {comment.strip()}" if (comment or "").strip() else ""),
            error_code="",
            error_message="",
        )
    unknown_outcome = RefundRequest.objects.filter(pk=refund_id, error_code="unknown_outcome").exists()
    checked = {"unconfirmed_calls": 0, "outcome_checked_at": timezone.now()} if unknown_outcome else {}
    refund = refund_transition(
        refund_id=refund_id,
        to_status=RefundStatus.APPROVED,
        expected_from={RefundStatus.NEEDS_ATTENTION},
        actor=actor,
        message="Retried by a person"
        + (", who found no refund at the provider" if unknown_outcome else "")
        + (f": {comment.strip()}" if (comment or "").strip() else ""),
        data={"outcome_checked": True} if unknown_outcome else None,
        submit_attempts=0,  # a fresh budget of automatic attempts; the log keeps every call
        error_code="",
        error_message="",
        next_action_at=timezone.now() + timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS),
        **checked,
    )
    enqueue_on_commit("refund_submit_task", refund.pk)
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
