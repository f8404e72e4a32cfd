"""The three roles, as groups with permissions, kept in step after every migrate."""

from django.conf import settings
from django.contrib.auth.models import Group, Permission

from approvals.models import ApproverLimit

SUPPORT_AGENTS = "Support agents"
FINANCE_MANAGERS = "Finance managers"
ACCOUNTANTS = "Accountants"

ROLE_PERMISSIONS = {
    SUPPORT_AGENTS: [
        "refunds.add_refundrequest",
        "refunds.view_refundrequest",
        "refunds.view_refundlog",
    ],
    FINANCE_MANAGERS: [
        "refunds.add_refundrequest",
        "refunds.view_refundrequest",
        "refunds.view_all_refundrequests",
        "refunds.approve_refundrequest",
        "refunds.retry_refundrequest",
        # File a refund on a payment with an open dispute, giving a reason (refunds.services.intake).
        "refunds.override_dispute_refundrequest",
        "refunds.view_refundlog",
        "refunds.view_payment",
        "approvals.view_approval",
        "refunds.view_reports",
        "refunds.export_refundrequests",
        "refunds.view_sale",
    ],
    ACCOUNTANTS: [
        "refunds.view_refundrequest",
        "refunds.view_all_refundrequests",
        "refunds.view_refundlog",
        "refunds.view_payment",
        "approvals.view_approval",
        "refunds.view_reports",
        "refunds.export_refundrequests",
        "refunds.view_sale",
        "refunds.add_sale",
    ],
}


def ensure_role_groups(sender=None, **kwargs):
    # Runs after every app's post_migrate (cheap, idempotent): permissions of apps migrated
    # later only exist by then.
    for group_name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                wanted.append(permission)
        group.permissions.add(*wanted)
    _ensure_default_approver_limit()


def _ensure_default_approver_limit():
    """Finance managers may approve up to REFUND_DEFAULT_APPROVER_LIMIT in any currency until a
    superuser sets limits of their own in the admin."""
    group = Group.objects.filter(name=FINANCE_MANAGERS).first()
    if group is not None:
        ApproverLimit.objects.get_or_create(
            group=group, currency="", defaults={"max_minor_amount": settings.REFUND_DEFAULT_APPROVER_LIMIT}
        )
