"""Reads for approvers: the approval queue with what a decision needs at a glance."""

from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from approvals.models import Approval
from refunds.models import RefundRequest, RefundStatus

# Refunds that never moved money do not count as earlier refunds.
_NOT_COUNTED = [RefundStatus.REJECTED, RefundStatus.CANCELED]


def _count_of(qs: QuerySet, group_by: str) -> Subquery:
    return Subquery(qs.order_by().values(group_by).annotate(n=Count("id")).values("n"))


def _sum_of(qs: QuerySet, group_by: str) -> Subquery:
    return Subquery(qs.order_by().values(group_by).annotate(total=Sum("amount_minor")).values("total"))


def approval_queue(qs: QuerySet[RefundRequest]) -> QuerySet[RefundRequest]:
    """`qs` narrowed to refunds awaiting approval, each annotated with `earlier_count` and
    `earlier_amount` (earlier refunds on its payment, in its currency's minor units),
    `customer_count` (the customer's earlier refunds, across payments) and `tier_count`
    (approvals recorded so far)."""
    earlier = RefundRequest.objects.filter(
        payment=OuterRef("payment"), created_at__lt=OuterRef("created_at")
    ).exclude(status__in=_NOT_COUNTED)
    by_customer = (
        RefundRequest.objects.filter(payment__customer=OuterRef("payment__customer"), created_at__lt=OuterRef("created_at"))
        .exclude(payment__customer="")
        .exclude(status__in=_NOT_COUNTED)
    )
    tiers = Approval.objects.filter(refund=OuterRef("pk"), decision=Approval.Decision.APPROVED)
    return (
        qs.filter(status=RefundStatus.PENDING_APPROVAL)
        .select_related("requested_by", "payment")
        .annotate(
            earlier_count=Coalesce(_count_of(earlier, "payment"), 0),
            earlier_amount=Coalesce(_sum_of(earlier, "payment"), 0),
            customer_count=Coalesce(_count_of(by_customer, "payment__customer"), 0),
            tier_count=Coalesce(_count_of(tiers, "refund"), 0),
        )
    )
