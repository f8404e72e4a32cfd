"""Reads that carry a rule. Who may see which refunds is refunds.visibility's (re-exported here)."""

import datetime

from django.db.models import Prefetch, QuerySet, prefetch_related_objects

from approvals.models import Approval
from refunds.models import RefundRequest
from refunds.visibility import refund_visible_to


def _approvals_prefetch() -> Prefetch:
    return Prefetch("approvals", queryset=Approval.objects.select_related("approver"))


def refund_with_approvals(qs: QuerySet[RefundRequest]) -> QuerySet[RefundRequest]:
    return qs.prefetch_related(_approvals_prefetch())


def refunds_load_approvals(refunds: list[RefundRequest]) -> None:
    """Refund rows already in hand get their approvals (with approvers) in one query, as
    refund_with_approvals loads them."""
    prefetch_related_objects(refunds, _approvals_prefetch())


def refund_approvals_known(refund: RefundRequest, approvals: list[Approval]) -> None:
    """`refund`'s approvals are `approvals` (the service that made the refund has just recorded
    them, their approvers with them): held as refunds_load_approvals holds them, so reading them
    is no query."""
    held = refund.approvals.all()  # not run: the queryset a prefetch leaves filled in
    held._result_cache = list(approvals)
    held._prefetch_done = True
    if not hasattr(refund, "_prefetched_objects_cache"):
        refund._prefetched_objects_cache = {}
    refund._prefetched_objects_cache[RefundRequest.approvals.rel.cache_name] = held


def refund_list_filtered(
    *,
    user,
    status: str | None = None,
    provider: str | None = None,
    currency: str | None = None,
    product: str | None = None,
    connector_transaction_id: str | None = None,
    created_after: datetime.datetime | None = None,
    created_before: datetime.datetime | None = None,
    mine: bool = False,
) -> QuerySet[RefundRequest]:
    """The refunds `user` may see, with their approvals, newest first; each filter given narrows it
    (created_after inclusive, created_before exclusive; `mine`: the ones `user` filed)."""
    qs = refund_with_approvals(refund_visible_to(user))
    exact = {
        "status": status,
        "provider": provider,
        "currency": currency,
        "product": product,
        "connector_transaction_id": connector_transaction_id,
    }
    qs = qs.filter(**{field: value for field, value in exact.items() if value is not None})
    if created_after is not None:
        qs = qs.filter(created_at__gte=created_after)
    if created_before is not None:
        qs = qs.filter(created_at__lt=created_before)
    if mine:
        qs = qs.filter(requested_by=user)
    return qs.order_by("-created_at", "-id")
