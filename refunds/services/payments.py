"""Payments: the row every refund of a payment locks, and what may still be refunded.

The refundable sums are written once here and shared by intake (under the lock), the
execution check before a refund accepted unverified is sent, and the support form's preview.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from approvals.models import Approval
from refunds import errors, rows
from refunds.models import OPEN_STATUSES, Payment, PaymentAlias, RefundRequest, RefundStatus
from refunds.money import Money, format_minor
from refunds.providers import UnknownProvider, get_provider
from refunds.providers.base import DisputeInfo, PaymentInfo, PermanentProviderError, TransientProviderError
from refunds.providers.base import TransactionNotFound as ProviderTransactionNotFound
from refunds.ratelimit import provider_slot_acquire


@dataclass(frozen=True)
class RefundSums:
    """Our own refunds of one payment, in minor units."""

    not_yet_at_provider: int  # open and not sent yet
    known_at_provider: int  # sent (open or succeeded): the provider holds them
    # Auto-approved and still moving money (open or succeeded), in the currency asked for: what the
    # approval policy counts against the threshold (approvals.policy; asked only by intake).
    auto_approved: int = 0


_COUNTED = sorted({*OPEN_STATUSES, RefundStatus.SUCCEEDED})


def payment_refund_sums(
    *, payment: Payment | None, exclude_refund_id: int | None = None, auto_approved_currency: str = ""
) -> RefundSums:
    """Both sums (and with `auto_approved_currency` the auto-approved one) in one statement:
    intake reads them under the payment's lock on every refund, in hand-written SQL (refunds.rows
    says why). The refunds counted are the open and succeeded ones: those that move money."""
    if payment is None:
        return RefundSums(0, 0)
    marks = ", ".join(["%s"] * len(OPEN_STATUSES))
    params = [*sorted(OPEN_STATUSES), auto_approved_currency, Approval.Decision.AUTO_APPROVED, payment.pk, *_COUNTED]
    excluded = ""
    if exclude_refund_id is not None:
        excluded = " AND r.id <> %s"
        params.append(exclude_refund_id)
    not_yet, known, auto = rows.fetch_one(
        f"SELECT "
        f"COALESCE(SUM(CASE WHEN r.status IN ({marks}) AND r.connector_refund_id = '' THEN r.amount_minor END), 0), "
        f"COALESCE(SUM(CASE WHEN r.connector_refund_id <> '' THEN r.amount_minor END), 0), "
        f"COALESCE(SUM(CASE WHEN r.currency = %s AND EXISTS (SELECT 1 FROM {rows.table(Approval)} a "
        f"WHERE a.refund_id = r.id AND a.decision = %s) THEN r.amount_minor END), 0) "
        f"FROM {rows.table(RefundRequest)} r "
        f"WHERE r.payment_id = %s AND r.status IN ({', '.join(['%s'] * len(_COUNTED))}){excluded}",
        params,
    )
    # int(): PostgreSQL's SUM of a bigint is a numeric (Decimal here); the ORM's Sum converts it too.
    return RefundSums(not_yet_at_provider=int(not_yet), known_at_provider=int(known), auto_approved=int(auto))


def payment_refundable_remaining(
    *, payment: Payment, exclude_refund_id: int | None = None, sums: RefundSums | None = None
) -> int | None:
    """What may still be refunded. None when the payment's amount is not known yet.

    Refunds that reached the provider are in its refunded amount, but that figure was read
    before the payment row was locked and may be stale: a worker may have sent one of ours
    since. So the part at the provider is the larger of the provider's figure and the sum of
    the refunds we know are there; refunds not yet sent are added on top. A provider that
    reports no refunded sum (Robokassa) still has ours. `sums`: read already (intake reads them
    once), else read here."""
    if payment.amount_minor is None:
        return None
    if sums is None:
        sums = payment_refund_sums(payment=payment, exclude_refund_id=exclude_refund_id)
    at_provider = max(payment.amount_refunded_minor, sums.known_at_provider)
    return payment.amount_minor - at_provider - sums.not_yet_at_provider


def payment_find(*, provider: str, connector_transaction_id: str) -> Payment | None:
    """The payment row `connector_transaction_id` names: an alias's payment first (a row made
    under that id before it was known as an alias is left behind, empty), else its own row."""
    alias = PaymentAlias.objects.filter(provider=provider, connector_transaction_id=connector_transaction_id).first()
    if alias is not None:
        return alias.payment
    return Payment.objects.filter(provider=provider, connector_transaction_id=connector_transaction_id).first()


def _locked(payment: Payment, *, created: bool) -> Payment:
    """The row under its lock: a row this transaction just inserted is locked by the insert and
    current already; any other is locked and read again."""
    if created:
        return payment
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment.pk)


def _payment_row_unverified(*, provider: str, connector_transaction_id: str) -> Payment:
    """The provider could not be asked: the row `connector_transaction_id` names (an alias's
    payment first), locked, made under that id when missing."""
    found = payment_find(provider=provider, connector_transaction_id=connector_transaction_id)
    if found is not None:
        return _locked(found, created=False)
    payment, created = Payment.objects.get_or_create(provider=provider, connector_transaction_id=connector_transaction_id)
    return _locked(payment, created=created)


def payment_lock_and_refresh(*, provider: str, connector_transaction_id: str, info: PaymentInfo | None) -> Payment:
    """Get (or create) and lock the payment row, whichever of its ids names it; refresh it from
    the provider's answer. With an answer the row is keyed by the provider's canonical id, its
    other ids are recorded as aliases, and rows made under those ids while it could not be asked
    (intake accepts unverified refunds) are folded in: their refunds move to this row."""
    if info is None:
        return _payment_row_unverified(provider=provider, connector_transaction_id=connector_transaction_id)
    canonical = info.connector_transaction_id or connector_transaction_id
    others = sorted({connector_transaction_id, *info.aliases} - {canonical})
    payment, stray_ids = _payment_upsert(
        provider=provider, connector_transaction_id=canonical, values=_synced_values(info), aliases=others
    )
    if stray_ids:
        RefundRequest.objects.filter(payment_id__in=stray_ids).update(payment=payment)
    return payment


def _payment_upsert(*, provider: str, connector_transaction_id: str, values: dict, aliases: list[str]) -> tuple[Payment, list[int]]:
    """The row made, or refreshed with `values`, by one `INSERT … ON CONFLICT DO UPDATE …
    RETURNING`, and locked either way: the update locks an existing row as SELECT … FOR UPDATE
    would (a row another transaction is inserting is waited for, then updated). Returns it and the
    ids of the rows made under `aliases` (locked, in id order), whose refunds are the caller's
    to move. On PostgreSQL the same statement records the aliases (an alias already recorded, for
    this payment or first for another row, is kept as it is) and locks those rows; on SQLite (one
    writer at a time, 3.35+ for RETURNING) two more statements do."""
    row = Payment(provider=provider, connector_transaction_id=connector_transaction_id, **values)
    fields = rows.written_fields(Payment)
    params = rows.prepared(row, fields, add=True)
    q = connection.ops.quote_name
    table = rows.table(Payment)
    upsert = (
        f"INSERT INTO {table} ({', '.join(q(f.column) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({q('provider')}, {q('connector_transaction_id')}) DO UPDATE SET "
        + ", ".join(f"{q(name)} = EXCLUDED.{q(name)}" for name in values)
        + f" RETURNING {', '.join(q(f.column) for f in Payment._meta.concrete_fields)}"
    )
    if connection.vendor != "postgresql":
        payment = rows.instance(Payment, rows.fetch_one(upsert, params))
        strays = Payment.objects.filter(provider=provider, connector_transaction_id__in=aliases).order_by("pk")
        stray_ids = list(strays.values_list("pk", flat=True))
        PaymentAlias.objects.bulk_create(
            [PaymentAlias(payment=payment, provider=provider, connector_transaction_id=other) for other in aliases],
            ignore_conflicts=True,
        )
        return payment, stray_ids
    # The strays' sub-select is an InitPlan, run when the upserted row is read: after its lock.
    sql = (
        f"WITH upserted AS ({upsert}), "
        f"alias AS (INSERT INTO {q(PaymentAlias._meta.db_table)} (payment_id, provider, connector_transaction_id, "
        f"created_at) SELECT upserted.id, %s, other, %s FROM upserted, unnest(%s::varchar[]) AS other "
        f"ON CONFLICT DO NOTHING), "
        f"stray AS (SELECT id FROM {table} WHERE provider = %s AND connector_transaction_id = ANY(%s::varchar[]) "
        f"ORDER BY id FOR UPDATE) "
        f"SELECT upserted.*, ARRAY(SELECT id FROM stray) AS stray_ids FROM upserted"
    )
    now = timezone.now()
    # Read as refunds.rows reads (a RawQuerySet's per-row column mapping cost more than the statement).
    *values, stray_ids = rows.fetch_one(sql, [*params, provider, now, aliases, provider, aliases])
    return rows.instance(Payment, values), list(stray_ids)


def _synced_values(info: PaymentInfo) -> dict:
    """The row's columns as the provider's answer gives them: the payment, and its dispute when
    the provider reports disputes (else what the row knows from elsewhere stays)."""
    values = {
        "amount_minor": info.amount.minor_amount,
        "currency": info.amount.currency,
        "amount_refunded_minor": info.amount_refunded,
        "status": info.status,
        "product": info.product[:200],
        "customer": info.customer[:255],
        "synced_at": timezone.now(),
    }
    if info.disputes_known:
        dispute = info.dispute
        values.update(
            dispute_id=dispute.dispute_id[:255] if dispute else "",
            dispute_state=str(dispute.state) if dispute else "",
            dispute_status=dispute.provider_status[:32] if dispute else "",
            dispute_reason=dispute.reason[:64] if dispute else "",
            dispute_amount_minor=dispute.amount.minor_amount if dispute else None,
            dispute_opened_at=dispute.opened_at if dispute else None,
        )
    return values


def payment_count_refund_succeeded(*, refund: RefundRequest) -> None:
    """Our refund succeeded: the payment's "refunded at provider" figure grows by it, unless that
    figure was read from the provider after the refund was sent (the provider counts a refund
    from its creation, pending included, so it already holds it). Never past the payment."""
    if refund.payment_id is None or refund.submitted_at is None:
        return
    # Hand-written (refunds.rows says why): the ORM's UPDATE with F() and Least() cost the worker
    # six times the CPU of the statement. SQLite's two-argument min() is PostgreSQL's LEAST.
    least = "LEAST" if connection.vendor == "postgresql" else "MIN"
    submitted_at = Payment._meta.get_field("synced_at").get_db_prep_value(refund.submitted_at, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {rows.table(Payment)} SET amount_refunded_minor = {least}(amount_refunded_minor + %s, amount_minor) "
            "WHERE id = %s AND amount_minor IS NOT NULL AND (synced_at IS NULL OR synced_at < %s)",
            [refund.amount_minor, refund.payment_id, submitted_at],
        )


def payment_check_amount(
    *, payment: Payment, amount: Money, exclude_refund_id: int | None = None, sums: RefundSums | None = None
) -> None:
    """Raise when `amount` is in another currency or more than remains refundable."""
    if payment.currency and payment.currency != amount.currency:
        raise errors.CurrencyMismatch(
            f"The payment is in {payment.currency}; the refund asks for {amount.currency}.", field="amount"
        )
    remaining = payment_refundable_remaining(payment=payment, exclude_refund_id=exclude_refund_id, sums=sums)
    if remaining is not None and amount.minor_amount > remaining:
        raise errors.AmountExceedsRefundable(
            f"{format_minor(amount.minor_amount, amount.currency)} exceeds what remains refundable on the payment "
            f"({format_minor(max(remaining, 0), amount.currency)}).",
            field="amount",
        )


def provider_adapter(provider: str):
    """The enabled adapter named `provider`, or the API's unknown_provider error."""
    try:
        return get_provider(provider)
    except UnknownProvider:
        raise errors.RefundValidationError(
            f"Unknown provider {provider!r}.", field="provider", code="unknown_provider"
        ) from None


def payment_info_fetch(*, adapter, provider: str, connector_transaction_id: str, show_code: bool = False) -> PaymentInfo:
    """Look a payment up at its provider (through the shared rate limit), for intake. Unknown
    and refused payments are validation errors; TransientProviderError is the caller's to handle."""
    try:
        provider_slot_acquire(provider, max_wait=settings.PROVIDER_RATE_MAX_WAIT_INTAKE_SECONDS)
        return adapter.get_payment(connector_transaction_id=connector_transaction_id)
    except ProviderTransactionNotFound as error:
        suffix = f" ({error.code})" if show_code else ""
        raise errors.TransactionNotFound(
            f"{provider} knows no transaction {connector_transaction_id!r}{suffix}.",
            field="connector_transaction_id",
        ) from error
    except PermanentProviderError as error:
        raise errors.RefundValidationError(error.message, field="connector_transaction_id", code=error.code)


@dataclass(frozen=True)
class PaymentPreview:
    provider: str
    connector_transaction_id: str
    amount: Money
    refunded_at_provider: int
    awaiting: int  # our refunds on it, open and not yet at the provider
    product: str
    dispute: DisputeInfo | None = None  # the payment's latest dispute, where the provider says

    @property
    def dispute_open(self) -> bool:
        return self.dispute is not None and self.dispute.is_open

    @property
    def refundable_now(self) -> int:
        return max(self.amount.minor_amount - self.refunded_at_provider - self.awaiting, 0)


def payment_preview(*, provider: str, connector_transaction_id: str) -> PaymentPreview:
    """What a payment is and what may still be refunded, asked of the provider now. Writes
    nothing: it is what the support form shows before anything is filed."""
    adapter = provider_adapter(provider)
    try:
        info = payment_info_fetch(adapter=adapter, provider=provider, connector_transaction_id=connector_transaction_id)
    except TransientProviderError as error:
        raise errors.ProviderUnavailable(f"{provider} cannot be reached right now: {error.message}") from error
    payment = payment_find(provider=provider, connector_transaction_id=info.connector_transaction_id or connector_transaction_id)
    sums = payment_refund_sums(payment=payment)
    return PaymentPreview(
        provider=provider,
        connector_transaction_id=connector_transaction_id,
        amount=info.amount,
        refunded_at_provider=max(info.amount_refunded, sums.known_at_provider),
        awaiting=sums.not_yet_at_provider,
        product=info.product,
        dispute=info.dispute,
    )
