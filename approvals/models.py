from django.conf import settings
from django.db import models
from django.db.models import Q

from refunds.models import RefundRequest
from refunds.money import format_minor, format_minor_number


class Approval(models.Model):
    """One decision on a refund request: who, what, why, when. Never edited."""

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        AUTO_APPROVED = "auto_approved", "Auto-approved (under threshold)"

    refund = models.ForeignKey("refunds.RefundRequest", on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    comment = models.CharField(max_length=1000, blank=True)
    tier = models.PositiveSmallIntegerField(default=1)
    # The approver's limit when they decided: what this approval covers.
    limit_minor = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One person never counts twice on one refund.
            models.UniqueConstraint(
                fields=["refund", "approver"], condition=Q(approver__isnull=False), name="approval_once_per_person"
            ),
        ]

    def __str__(self):
        return f"{self.get_decision_display()} by {self.approver or 'policy'}"


class AutoApproveThreshold(models.Model):
    """Refunds at or under this amount (or the full remaining amount) are approved at once."""

    currency = models.CharField(max_length=3, unique=True)
    max_minor_amount = models.BigIntegerField(help_text="In minor units: 5000 is $50.00, ¥5000 is ¥5000.")

    class Meta:
        ordering = ["currency"]
        constraints = [models.CheckConstraint(condition=Q(max_minor_amount__gte=0), name="threshold_not_negative")]

    def __str__(self):
        return f"{self.currency} ≤ {format_minor(self.max_minor_amount, self.currency)}"


class ApproverLimit(models.Model):
    """How much one finance manager (or everyone in a group) may approve alone, per currency.
    A blank currency applies to every currency without a row of its own."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    currency = models.CharField(max_length=3, blank=True, help_text="Blank: any currency.")
    max_minor_amount = models.BigIntegerField(help_text="In minor units of the currency.")

    class Meta:
        ordering = ["currency", "max_minor_amount"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False)),
                name="limit_for_user_or_group",
            ),
            models.CheckConstraint(condition=Q(max_minor_amount__gte=0), name="limit_not_negative"),
            models.UniqueConstraint(fields=["user", "currency"], name="limit_once_per_user_currency"),
            models.UniqueConstraint(fields=["group", "currency"], name="limit_once_per_group_currency"),
        ]

    def __str__(self):
        who = self.user or self.group
        return f"{who}: {self.limit_display}"

    @property
    def limit_display(self) -> str:
        """Money; a row for any currency counts in each currency's own minor units."""
        if self.currency:
            return format_minor(self.max_minor_amount, self.currency)
        return (f"{format_minor_number(self.max_minor_amount, 'USD')} in any 2-decimal currency "
                f"({format_minor_number(self.max_minor_amount, 'JPY')} JPY, "
                f"{format_minor_number(self.max_minor_amount, 'KWD')} KWD)")


class PendingRefund(RefundRequest):
    """The approval queue: refund requests waiting for a finance manager (a view, not a table)."""

    class Meta:
        proxy = True
        verbose_name = "refund awaiting approval"
        verbose_name_plural = "approval queue"
