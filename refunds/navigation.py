"""Where each role lands after logging in, and what the top bar shows (how many refunds wait
for the finance manager). The support pages and the admin share both."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse

from refunds.models import RefundRequest, RefundStatus


def role_home_url(user) -> str:
    """Managers decide, agents file, accountants read reports; anyone else with the back
    office gets its index."""
    if user.has_perm("refunds.approve_refundrequest"):
        return reverse("admin:approvals_pendingrefund_changelist")
    if user.has_perm("refunds.add_refundrequest"):
        return reverse("refund-list")
    if user.has_perm("refunds.view_reports"):
        return reverse("reports-dashboard")
    if user.is_staff:
        return reverse("admin:index")
    return reverse("refund-list")


@login_required
def home(request):
    return redirect(role_home_url(request.user))


def approvals_waiting(request) -> dict:
    """Template context: `approvals_waiting`, the refunds this user could decide (not their
    own) that wait for approval; None for people who decide nothing."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("refunds.approve_refundrequest"):
        return {"approvals_waiting": None}
    waiting = RefundRequest.objects.filter(status=RefundStatus.PENDING_APPROVAL).exclude(requested_by=user)
    return {"approvals_waiting": waiting.count()}
