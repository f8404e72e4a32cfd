from django.contrib import admin
from django.utils.timesince import timesince

from approvals.models import Approval, ApproverLimit, AutoApproveThreshold, PendingRefund
from approvals.selectors import approval_queue
from refunds.admin import (
    CURRENCY_FILTER,
    PROVIDER_FILTER,
    ReadOnlyMixin,
    RefundRequestAdmin,
    SecondFactorForWritesMixin,
    VisibleRowsMixin,
)
from refunds.money import format_minor
from refunds.visibility import approvals_visible_to


@admin.register(Approval)
class ApprovalAdmin(VisibleRowsMixin, ReadOnlyMixin, admin.ModelAdmin):
    visible_to = approvals_visible_to
    list_display = ("created_at", "refund", "decision", "approver", "tier", "comment")
    list_filter = ("decision",)
    list_select_related = ("refund", "approver")
    raw_id_fields = ("refund",)
    search_fields = ("=refund__merchant_refund_id",)
    show_full_result_count = False


class SuperuserOnlyMixin(SecondFactorForWritesMixin):
    """The approval policy is edited by superusers only (after a fresh second factor); finance
    managers may read it."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or request.user.has_perm("refunds.approve_refundrequest")

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(AutoApproveThreshold)
class AutoApproveThresholdAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ("currency", "max_minor_amount", "as_money")

    @admin.display(description="Threshold")
    def as_money(self, obj):
        return format_minor(obj.max_minor_amount, obj.currency)


@admin.register(ApproverLimit)
class ApproverLimitAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ("holder", "currency_or_any", "max_minor_amount", "as_money")
    list_select_related = ("user", "group")
    autocomplete_fields = ("user",)

    @admin.display(description="User or group")
    def holder(self, obj):
        return obj.user or f"group: {obj.group}"

    @admin.display(description="Currency")
    def currency_or_any(self, obj):
        return obj.currency or "any"

    @admin.display(description="Limit")
    def as_money(self, obj):
        return format_minor(obj.max_minor_amount, obj.currency or "USD") if obj.currency else obj.max_minor_amount


@admin.register(PendingRefund)
class ApprovalQueueAdmin(RefundRequestAdmin):
    """Pending refunds, oldest first, with what an approver needs to decide at a glance."""

    list_display = (
        "merchant_refund_id",
        "waiting",
        "amount",
        "requested_by",
        "product",
        "payment_remaining",
        "earlier_refunds",
        "customer_refunds",
        "tiers",
        "reason",
    )
    list_filter = (PROVIDER_FILTER, CURRENCY_FILTER)
    ordering = ("created_at", "id")
    list_select_related = ("requested_by", "payment")

    def get_queryset(self, request):
        # The changelist skips list_select_related once a queryset has its own: the selector
        # selects the same relations.
        return approval_queue(super().get_queryset(request))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("refunds.approve_refundrequest") or request.user.has_perm(
            "refunds.view_all_refundrequests"
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    @admin.display(description="Waiting", ordering="created_at")
    def waiting(self, obj):
        return timesince(obj.created_at)

    @admin.display(description="Payment: refundable at provider")
    def payment_remaining(self, obj):
        payment = obj.payment
        if payment.amount_minor is None:
            return "not verified yet"
        return format_minor(payment.amount_minor - payment.amount_refunded_minor, payment.currency)

    @admin.display(description="Earlier refunds on payment", ordering="earlier_count")
    def earlier_refunds(self, obj):
        return obj.earlier_count

    @admin.display(description="Customer's earlier refunds", ordering="customer_count")
    def customer_refunds(self, obj):
        if not obj.payment.customer:
            return "—"  # the provider named no customer for this payment
        return obj.customer_count

    @admin.display(description="Approvals so far", ordering="tier_count")
    def tiers(self, obj):
        return obj.tier_count
