"""The approval policy: thresholds and approver limits, read from the database (editable in
the admin by superusers), with the environment's defaults where no row says otherwise."""

from django.conf import settings
from django.db.models import Q, Sum

from approvals.models import Approval, ApproverLimit, AutoApproveThreshold
from refunds import rows
from refunds.models import RefundRequest, RefundStatus
from refunds.money import STORED_TEXT_LOCALE, Money, format_minor
from refunds.reports.calendar import business_today, day_start

UNLIMITED = 2**62


def auto_approve_threshold(currency: str) -> int:
    # Read on every refund filed: hand-written SQL (refunds.rows says why).
    row = rows.fetch_one(f"SELECT max_minor_amount FROM {rows.table(AutoApproveThreshold)} WHERE currency = %s", [currency])
    if row is not None:
        return row[0]
    return settings.REFUND_AUTO_APPROVE_THRESHOLDS.get(currency, settings.REFUND_AUTO_APPROVE_DEFAULT)


# Auto-approved refunds that no longer move money: they stop counting against the threshold.
_GAVE_BACK = (RefundStatus.FAILED, RefundStatus.REJECTED, RefundStatus.CANCELED)


def _auto_approved_minor(refunds, *, since=None) -> int:
    approvals = Approval.objects.filter(decision=Approval.Decision.AUTO_APPROVED)
    if since is not None:
        approvals = approvals.filter(created_at__gte=since)
    counted = refunds.filter(pk__in=approvals.values("refund_id")).exclude(status__in=_GAVE_BACK)
    return counted.aggregate(total=Sum("amount_minor"))["total"] or 0


def auto_approve_refusal_for(*, amount: Money, payment, threshold: int, on_payment_already: int | None = None) -> str:
    """Why a refund of `amount` on `payment` may not be approved at once ("" when it may): intake
    asks before the refund's row exists. The threshold bounds the sum of auto-approved refunds on
    the payment, this one included; with REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY also those of the
    payment's customer today (business day). The caller holds the payment's row lock (and the
    customer's), so the sums are current. `threshold`: the currency's (auto_approve_threshold),
    which the caller has just read. `on_payment_already`: the payment's auto-approved sum when the
    caller read it already under that lock (intake: payments.payment_refund_sums, the same refunds
    as _auto_approved_minor counts, in one statement with the refundable sums), else read here."""
    currency, amount = amount.currency, amount.minor_amount
    # The answer is stored (intake's note) and read by anyone: one fixed notation.
    def money(minor: int) -> str:
        return format_minor(minor, currency, STORED_TEXT_LOCALE)

    over = f"over the {money(threshold)} threshold"
    # (An amount over the threshold alone is refused here too: the payment's sum includes it.
    # Intake asks only for amounts at or under it.)
    mine = RefundRequest.objects.filter(currency=currency)
    if on_payment_already is None:
        on_payment_already = _auto_approved_minor(mine.filter(payment_id=payment.pk))
    on_payment = amount + on_payment_already
    if on_payment > threshold:
        return f"auto-approved refunds on this payment would reach {money(on_payment)}, {over}"
    customer = payment.customer
    if settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY and customer:
        theirs = mine.filter(payment__provider=payment.provider, payment__customer=customer)
        today = amount + _auto_approved_minor(theirs, since=day_start(business_today()))
        if today > threshold:
            return (
                f"auto-approved refunds for customer {customer} today would reach {money(today)}, "
                f"{over}"
            )
    return ""


def auto_approves(amount: Money, *, payment=None) -> bool:
    """True when a refund of `amount` would be approved without a finance manager: the support
    form's confirmation page tells the agent which it will be. With the payment (a row, or None
    before its first refund) the refunds already auto-approved on it count, as intake counts them
    under the payment's lock; this is a preview, intake decides."""
    threshold = auto_approve_threshold(amount.currency)
    if amount.minor_amount > threshold:
        return False
    if payment is None:
        return True
    already = _auto_approved_minor(RefundRequest.objects.filter(currency=amount.currency, payment=payment))
    return amount.minor_amount + already <= threshold


def approver_limit(user, currency: str) -> int:
    """The most `user` may approve alone in `currency`. Each holder (the user, each of their
    groups) contributes its row for the currency, or else its any-currency row; the highest wins."""
    if user.is_superuser:
        return UNLIMITED
    rows = ApproverLimit.objects.filter(
        Q(user=user) | Q(group__in=user.groups.all()), currency__in=[currency, ""]
    ).values_list("user_id", "group_id", "currency", "max_minor_amount")
    per_holder: dict[tuple, int] = {}
    for user_id, group_id, row_currency, amount in rows:
        holder = (user_id, group_id)
        # A holder has at most one row per currency (the unique constraints): the currency's wins.
        if row_currency == currency or holder not in per_holder:
            per_holder[holder] = amount
    return max(per_holder.values(), default=0)
