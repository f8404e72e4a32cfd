"""Who may see what: one rule, read by the API, the support pages, the reports and every admin page.

The rule is about refunds: superusers and holders of `view_all_refundrequests` (finance managers,
accountants) see every refund; holders of `view_refundrequest` alone (support agents) see the refunds
they filed; anyone else sees none. Every other row follows the refund it belongs to (a log line, an
approval, a payment); rows that belong to no single refund (provider events) are for those who see
every refund; sales and export jobs follow their own, stated below. Interfaces narrow further by their
model permission (the admin's view permission, the report's permission); they never widen this.
"""

from django.db.models import Q, QuerySet

from approvals.models import Approval
from refunds.models import ApiToken, ExportJob, RefundBatch, Payment, RefundLog, RefundRequest, Sale, WebhookEvent

_NOTHING = Q(pk__in=[])


def sees_every_refund(user) -> bool:
    return bool(user.is_active and (user.is_superuser or user.has_perm("refunds.view_all_refundrequests")))


def refund_scope(user, *, via: str = "") -> Q:
    """The rule as a filter over refunds reached through `via` (e.g. "refund__" from a log line)."""
    if not user.is_authenticated or not user.is_active:
        return _NOTHING
    if sees_every_refund(user):
        return Q()
    if user.has_perm("refunds.view_refundrequest"):
        return Q(**{f"{via}requested_by": user})
    return _NOTHING


def refund_visible_to(user) -> QuerySet[RefundRequest]:
    return RefundRequest.objects.select_related("requested_by").filter(refund_scope(user))


def refund_logs_visible_to(user) -> QuerySet[RefundLog]:
    return RefundLog.objects.filter(refund_scope(user, via="refund__"))


def approvals_visible_to(user) -> QuerySet[Approval]:
    return Approval.objects.filter(refund_scope(user, via="refund__"))


def payments_visible_to(user) -> QuerySet[Payment]:
    """A payment is seen by whoever sees one of its refunds."""
    if sees_every_refund(user):
        return Payment.objects.all()
    return Payment.objects.filter(pk__in=RefundRequest.objects.filter(refund_scope(user)).values("payment_id"))


def webhook_events_visible_to(user) -> QuerySet[WebhookEvent]:
    # An event may name any refund (and carries the provider's raw payload): only for those who see all.
    return WebhookEvent.objects.all() if sees_every_refund(user) else WebhookEvent.objects.none()


def sales_visible_to(user) -> QuerySet[Sale]:
    # Sales are the business's, not a refund's: all of them to holders of view_sale, none to anyone else.
    allowed = user.is_active and (user.is_superuser or user.has_perm("refunds.view_sale"))
    return Sale.objects.all() if allowed else Sale.objects.none()


def export_jobs_visible_to(user) -> QuerySet[ExportJob]:
    """Each person's own exports (their contents are already cut to what they may see);
    superusers see everyone's."""
    if not user.is_authenticated or not user.is_active:
        return ExportJob.objects.none()
    return ExportJob.objects.all() if user.is_superuser else ExportJob.objects.filter(requested_by=user)


def api_tokens_visible_to(user) -> QuerySet[ApiToken]:
    if not user.is_authenticated or not user.is_active:
        return ApiToken.objects.none()
    return ApiToken.objects.all() if user.is_superuser else ApiToken.objects.filter(user=user)



def refund_batches_visible_to(user) -> QuerySet[RefundBatch]:
    """Bulk refund files follow the refunds they file: those who see every refund see every batch
    (finance managers approve their waiting rows); an agent, the batches they uploaded."""
    if not user.is_authenticated or not user.is_active:
        return RefundBatch.objects.none()
    if sees_every_refund(user):
        return RefundBatch.objects.all()
    if user.has_perm("refunds.add_refundrequest"):
        return RefundBatch.objects.filter(created_by=user)
    return RefundBatch.objects.none()
