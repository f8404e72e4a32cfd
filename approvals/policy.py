"""The approval policy: thresholds and approver limits, read from the database (editable in
the admin by superusers), with the environment's defaults where no row says otherwise."""

from django.conf import settings
from django.db.models import Q

from approvals.models import ApproverLimit, AutoApproveThreshold
from refunds.money import Money

UNLIMITED = 2**62


def auto_approve_threshold(currency: str) -> int:
    row = AutoApproveThreshold.objects.filter(currency=currency).values_list("max_minor_amount", flat=True).first()
    if row is not None:
        return row
    return settings.REFUND_AUTO_APPROVE_THRESHOLDS.get(currency, settings.REFUND_AUTO_APPROVE_DEFAULT)


def auto_approves(amount: Money) -> bool:
    """True when a refund of `amount` is approved without a finance manager (intake applies it;
    the support form's confirmation page tells the agent which it will be)."""
    return amount.minor_amount <= auto_approve_threshold(amount.currency)


def approver_limit(user, currency: str) -> int:
    """The most `user` may approve alone in `currency`. Each holder (the user, each of their
    groups) contributes its row for the currency, or else its any-currency row; the highest wins."""
    if user.is_superuser:
        return UNLIMITED
    rows = ApproverLimit.objects.filter(
        Q(user=user) | Q(group__in=user.groups.all()), currency__in=[currency, ""]
    ).values_list("user_id", "group_id", "currency", "max_minor_amount")
    per_holder: dict[tuple, tuple[bool, int]] = {}
    for user_id, group_id, row_currency, amount in rows:
        holder = (user_id, group_id)
        specific = row_currency == currency
        if holder not in per_holder or (specific and not per_holder[holder][0]):
            per_holder[holder] = (specific, amount)
    return max((amount for _, amount in per_holder.values()), default=0)
