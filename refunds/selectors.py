"""Reads that carry a rule: who may see which refunds."""

from django.db.models import Prefetch, QuerySet

from approvals.models import Approval
from refunds.models import RefundRequest


def refund_visible_to(user) -> QuerySet[RefundRequest]:
    qs = RefundRequest.objects.select_related("requested_by")
    if user.is_superuser or user.has_perm("refunds.view_all_refundrequests"):
        return qs
    if user.has_perm("refunds.view_refundrequest"):
        return qs.filter(requested_by=user)
    return qs.none()


def refund_with_approvals(qs: QuerySet[RefundRequest]) -> QuerySet[RefundRequest]:
    return qs.prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("approver")))
