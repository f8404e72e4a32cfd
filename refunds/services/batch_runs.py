"""The worker's side of a refund batch: the dry run (each row's plan, its payment asked of the
provider through the shared rate limit) and the filing (each row through `refund_request_create`),
both in chunks under a lease in the database, so one worker at a time works on a batch, a worker
that dies is replaced once its lease lapses, and a rerun files nothing twice (intake replays a
row's merchant_refund_id). Also: a finance manager approving a batch's waiting rows."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.policy import approver_limit, auto_approve_threshold, auto_approves
from approvals.services import refund_approve
from refunds import errors
from refunds.models import RefundBatch, RefundBatchRow, RefundRequest, RefundStatus
from refunds.money import Money, format_minor
from refunds.providers.base import PaymentInfo, PermanentProviderError, TransientProviderError
from refunds.providers.base import TransactionNotFound as ProviderTransactionNotFound
from refunds.publish import enqueue_on_commit
from refunds.ratelimit import RateLimited, provider_slot_acquire
from refunds.services.batches import BATCH_METADATA, ROW_INVALID
from refunds.services.intake import refund_request_create, refund_request_fingerprint
from refunds.services.payments import payment_find, payment_refund_sums, provider_adapter

logger = logging.getLogger(__name__)


def _lease() -> timedelta:
    return timedelta(seconds=settings.REFUND_BATCH_LEASE_SECONDS)

# Rows checked or filed between two progress writes (and lease renewals).
CHUNK_ROWS = 25
# A batch waiting for a worker this long with no claim is sent to the workers again.
RESEND_AFTER = timedelta(seconds=60)
# Tries per payment lookup when the shared rate limit is fully booked or the provider is down.
_LOOKUP_TRIES = 5


class _LostLease(Exception):
    """Another worker took the batch over (ours was thought dead): stop."""


def _claim(batch_id: int) -> tuple[RefundBatch, str] | None:
    now = timezone.now()
    with transaction.atomic():
        batch = RefundBatch.objects.select_for_update(skip_locked=True).filter(pk=batch_id).first()
        if batch is None or batch.state not in (RefundBatch.State.CHECKING, RefundBatch.State.FILING):
            return None
        if batch.lease_until is not None and batch.lease_until > now:
            return None  # a live worker holds it
        if batch.lease_token:
            logger.warning("batch %s: its worker's lease lapsed; taking it over", batch.pk)
        batch.lease_token, batch.lease_until = uuid.uuid4().hex, now + _lease()
        batch.save(update_fields=["lease_token", "lease_until"])
    return batch, batch.lease_token


def _progress(batch: RefundBatch, token: str, **fields) -> None:
    fields.setdefault("lease_until", timezone.now() + _lease())
    held = RefundBatch.objects.filter(pk=batch.pk, lease_token=token).update(**fields)
    if not held:
        raise _LostLease


def refund_batch_run(*, batch_id: int) -> str:
    """Do whatever the batch is waiting for (its dry run, or its filing). Safe to run twice."""
    claimed = _claim(batch_id)
    if claimed is None:
        return "not claimed"
    batch, token = claimed
    try:
        if batch.state == RefundBatch.State.CHECKING:
            _check(batch, token)
            return "checked"
        _file(batch, token)
        return "filed"
    except _LostLease:
        logger.warning("batch %s: another worker took it over; stopping", batch_id)
        return "lost lease"


# --- the dry run --------------------------------------------------------------------------


@dataclass
class _PaymentPlan:
    """One payment as the dry run sees it: what remains, what the file's earlier rows take."""

    info: PaymentInfo | None = None
    refusal: str = ""
    payment: object = None
    remaining: int | None = None
    auto_minor: int = 0
    lines: list[int] = field(default_factory=list)


def _lookup(provider: str, connector_transaction_id: str) -> _PaymentPlan:
    adapter = provider_adapter(provider)
    for attempt in range(_LOOKUP_TRIES):
        try:
            provider_slot_acquire(provider, max_wait=settings.PROVIDER_RATE_MAX_WAIT_SECONDS)
            info = adapter.get_payment(connector_transaction_id=connector_transaction_id)
        except RateLimited:
            continue
        except ProviderTransactionNotFound:
            return _PaymentPlan(refusal=f"unknown payment: {provider} knows no transaction {connector_transaction_id!r}.")
        except PermanentProviderError as error:
            return _PaymentPlan(refusal=f"{provider} refused to describe the payment: {error.message}")
        except TransientProviderError as error:
            if attempt + 1 == _LOOKUP_TRIES:
                return _PaymentPlan(refusal=f"{provider} could not be reached ({error.message}); upload the file again later.")
            time.sleep(min(2**attempt * 0.5, 5))
            continue
        payment = payment_find(provider=provider, connector_transaction_id=info.connector_transaction_id or connector_transaction_id)
        sums = payment_refund_sums(payment=payment)
        refunded = max(info.amount_refunded, sums.known_at_provider)
        return _PaymentPlan(info=info, payment=payment, remaining=info.amount.minor_amount - refunded - sums.not_yet_at_provider)
    return _PaymentPlan(refusal=f"the {provider} request rate stayed fully booked; upload the file again later.")


def _existing_refusal(row: RefundBatchRow, user) -> tuple[str, str]:
    """(plan, message) for a row whose merchant_refund_id is already taken; ("", "") when it is free."""
    existing = RefundRequest.objects.filter(merchant_refund_id=row.merchant_refund_id).first()
    if existing is None:
        return "", ""
    fingerprint = refund_request_fingerprint(
        provider=row.provider, connector_transaction_id=row.connector_transaction_id,
        amount=Money(row.amount_minor, row.currency) if row.amount_minor is not None else None,
        reason=row.note, metadata=BATCH_METADATA, product=row.product, requested_by=user, reason_code=row.reason_code,
    )
    if existing.request_fingerprint == fingerprint:
        return RefundBatchRow.Plan.ALREADY, f"already filed ({existing.get_status_display().lower()}); filed once only."
    return RefundBatchRow.Plan.REFUSED, (
        f"duplicate id: merchant_refund_id {row.merchant_refund_id} was already used for another refund."
    )


def _plan_row(row: RefundBatchRow, plans: dict, user) -> None:
    plan, message = _existing_refusal(row, user)
    if plan:
        row.plan, row.message = plan, message
        row.planned_minor = RefundRequest.objects.get(merchant_refund_id=row.merchant_refund_id).amount_minor
        return
    key = (row.provider, row.connector_transaction_id)
    if key not in plans:
        plans[key] = _lookup(*key)
    payment = plans[key]
    if payment.refusal:
        row.plan, row.message = RefundBatchRow.Plan.REFUSED, payment.refusal
        return
    currency = payment.info.amount.currency
    if row.currency and row.currency != currency:
        row.plan, row.message = RefundBatchRow.Plan.REFUSED, f"currency: the payment is in {currency}, the row says {row.currency}."
        return
    row.currency = currency
    earlier = f" after line{'s' if len(payment.lines) > 1 else ''} {', '.join(map(str, payment.lines))} of this file" if payment.lines else ""
    amount = row.amount_minor if row.amount_minor is not None else payment.remaining
    if amount is None or amount <= 0:
        row.plan, row.message = RefundBatchRow.Plan.REFUSED, f"over-refund: nothing remains refundable on the payment{earlier}."
        return
    if amount > payment.remaining:
        row.plan, row.message = RefundBatchRow.Plan.REFUSED, (
            f"over-refund: {format_minor(amount, currency)} exceeds what remains refundable "
            f"({format_minor(max(payment.remaining, 0), currency)}){earlier}."
        )
        return
    payment.remaining -= amount
    payment.lines.append(row.line)
    row.planned_minor = amount
    # As intake will judge it: the threshold bounds the auto-approved refunds on the payment,
    # those already there and those of this file's earlier rows.
    if auto_approves(Money(payment.auto_minor + amount, currency), payment=payment.payment):
        payment.auto_minor += amount
        row.plan, row.message = RefundBatchRow.Plan.AUTO, "will be approved at once."
    else:
        threshold = format_minor(auto_approve_threshold(currency), currency)
        why = f"{format_minor(amount, currency)} is over the {threshold} threshold" if amount > auto_approve_threshold(currency) \
            else f"auto-approved refunds on this payment would pass the {threshold} threshold{earlier}"
        row.plan, row.message = RefundBatchRow.Plan.APPROVAL, f"needs a finance manager: {why}."


def _check(batch: RefundBatch, token: str) -> None:
    user = batch.created_by
    plans: dict = {}
    # A run taken over from a dead worker starts again: each payment's sums need every row
    # in file order. Rows the file itself refused keep their refusal.
    batch.rows.exclude(error_code=ROW_INVALID).update(plan="", message="", planned_minor=None)
    rows = list(batch.rows.filter(plan="").order_by("line"))
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        for row in chunk:
            _plan_row(row, plans, user)
        with transaction.atomic():
            RefundBatchRow.objects.bulk_update(chunk, ["plan", "message", "planned_minor", "currency"])
            _progress(batch, token, rows_checked=batch.rows.exclude(plan="").count())
    with transaction.atomic():
        _progress(batch, token, state=RefundBatch.State.CHECKED, totals=_totals(batch), lease_token="", lease_until=None,
                  rows_checked=batch.rows_total)


def _totals(batch: RefundBatch) -> dict:
    totals: dict[str, dict[str, int]] = {}
    for plan, currency, planned, asked in batch.rows.values_list("plan", "currency", "planned_minor", "amount_minor"):
        entry = totals.setdefault(currency or "?", {})
        entry[f"{plan}_rows"] = entry.get(f"{plan}_rows", 0) + 1
        entry[plan] = entry.get(plan, 0) + (planned if planned is not None else asked or 0)
    return totals


# --- filing -------------------------------------------------------------------------------


def _file_row(row: RefundBatchRow, user) -> None:
    try:
        refund, _created = refund_request_create(
            merchant_refund_id=row.merchant_refund_id,
            provider=row.provider,
            connector_transaction_id=row.connector_transaction_id,
            amount=Money(row.amount_minor, row.currency) if row.amount_minor is not None else None,
            reason=row.note,
            metadata=BATCH_METADATA,
            product=row.product,
            requested_by=user,
            reason_code=row.reason_code,
        )
    except errors.RefundError as error:
        row.outcome, row.error_code, row.message = RefundBatchRow.Outcome.REFUSED, error.code[:64], error.message[:500]
        row.refund = None
        return
    row.refund = refund
    row.error_code = ""
    row.outcome = RefundBatchRow.Outcome.ALREADY if row.plan == RefundBatchRow.Plan.ALREADY else RefundBatchRow.Outcome.FILED
    row.message = f"{refund.get_status_display()}."


def _file(batch: RefundBatch, token: str) -> None:
    user = batch.created_by
    while True:
        chunk = list(batch.rows.filter(outcome="").order_by("line")[:CHUNK_ROWS])
        if not chunk:
            break
        for row in chunk:
            _file_row(row, user)
            # Each row's outcome is kept as soon as it is known: a worker dying here leaves
            # at most this row to be replayed (intake's replay finds its refund).
            row.save(update_fields=["outcome", "error_code", "message", "refund"])
        _progress(batch, token, rows_done=batch.rows.exclude(outcome="").count())
    _progress(batch, token, state=RefundBatch.State.DONE, finished_at=timezone.now(), lease_token="", lease_until=None,
              rows_done=batch.rows_total)


def refund_batches_sweep() -> list[int]:
    """Batches waiting for a worker whose message was lost, or whose worker's lease lapsed."""
    now = timezone.now()
    due = RefundBatch.objects.filter(state__in=[RefundBatch.State.CHECKING, RefundBatch.State.FILING]).filter(
        Q(lease_until__lt=now)
        | Q(lease_until__isnull=True, created_at__lt=now - RESEND_AFTER, confirmed_at__isnull=True)
        | Q(lease_until__isnull=True, confirmed_at__lt=now - RESEND_AFTER)
    )
    ids = list(due.values_list("pk", flat=True)[:100])
    with transaction.atomic():
        for batch_id in ids:
            enqueue_on_commit("refund_batch_run_task", batch_id)
    return ids


# --- approving the waiting rows -----------------------------------------------------------


@dataclass(frozen=True)
class RowDecision:
    line: int
    merchant_refund_id: str
    approved: bool
    message: str


def refund_batch_waiting(batch: RefundBatch):
    return (
        batch.rows.filter(refund__status=RefundStatus.PENDING_APPROVAL).select_related("refund").order_by("line")
    )


def refund_batch_approve_waiting(*, batch_id: int, approver, comment: str = "") -> list[RowDecision]:
    """Approve each of the batch's rows still awaiting approval that `approver` may approve alone
    (within their limit); the others are left waiting, saying why. Never the batch's own filer."""
    batch = RefundBatch.objects.get(pk=batch_id)
    if not approver.has_perm("refunds.approve_refundrequest"):
        raise errors.PermissionDenied("Only finance managers may approve refunds.")
    if batch.created_by_id == approver.pk:
        raise errors.PermissionDenied("Nobody approves a batch they filed.", code="self_approval_forbidden")
    decisions = []
    limits: dict[str, int] = {}
    for row in refund_batch_waiting(batch):
        refund = row.refund
        limit = limits.setdefault(refund.currency, approver_limit(approver, refund.currency))
        if refund.amount_minor > limit:
            decisions.append(RowDecision(row.line, row.merchant_refund_id, False,
                                         f"{format_minor(refund.amount_minor, refund.currency)} is over your limit "
                                         f"({format_minor(limit, refund.currency)}); left waiting."))
            continue
        try:
            refund = refund_approve(refund_id=refund.pk, approver=approver,
                                    comment=comment or f"Approved with batch {batch.pk}")
        except errors.RefundError as error:
            decisions.append(RowDecision(row.line, row.merchant_refund_id, False, error.message))
            continue
        decisions.append(RowDecision(row.line, row.merchant_refund_id, refund.status != RefundStatus.PENDING_APPROVAL,
                                     refund.get_status_display() + "."))
    return decisions
