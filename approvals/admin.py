from django.contrib import admin
from django.template.defaultfilters import pluralize
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from approvals.models import Approval, ApproverLimit, AutoApproveThreshold, PendingRefund
from approvals.policy import approver_limit
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
    list_display = ("currency", "as_money")

    @admin.display(description="Threshold", ordering="max_minor_amount")
    def as_money(self, obj):
        return format_minor(obj.max_minor_amount, obj.currency)


@admin.register(ApproverLimit)
class ApproverLimitAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ("holder", "currency_or_any", "as_money")
    list_select_related = ("user", "group")
    autocomplete_fields = ("user",)

    @admin.display(description="User or group")
    def holder(self, obj):
        return obj.user or f"group: {obj.group}"

    @admin.display(description="Currency")
    def currency_or_any(self, obj):
        return obj.currency or "any"

    @admin.display(description="Limit", ordering="max_minor_amount")
    def as_money(self, obj):
        return obj.limit_display


@admin.register(PendingRefund)
class ApprovalQueueAdmin(RefundRequestAdmin):
    """Pending refunds, oldest first, with what an approver needs to decide at a glance. Five
    columns, each with a second line, so the queue fits a 1366 px laptop; the reason is on
    hover. The "Decision" column is about the person looking: their own requests, their limit."""

    # get_list_display adds the "Decision" column, which needs the request.
    list_display = ("refund", "amount", "payment_column", "waiting")
    list_display_links = ("refund",)
    list_filter = (PROVIDER_FILTER, CURRENCY_FILTER)
    ordering = ("created_at", "id")
    list_select_related = ("requested_by", "payment")

    def get_queryset(self, request):
        # The changelist skips list_select_related once a queryset has its own: the selector
        # selects the same relations.
        return approval_queue(super().get_queryset(request))

    def get_list_display(self, request):
        # The decision column needs the person looking (admin instances are shared by every
        # request, so the request is bound to this list's callable, never stored on self).
        limits: dict[str, int] = {}

        @admin.display(description="Decision")
        def decision(obj):
            if obj.currency not in limits:
                limits[obj.currency] = approver_limit(request.user, obj.currency)
            return queue_decision(obj, user=request.user, limit=limits[obj.currency])

        return ("refund", "amount", "payment_column", "waiting", decision)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("refunds.approve_refundrequest") or request.user.has_perm(
            "refunds.view_all_refundrequests"
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Approval queue", **(extra_context or {})})

    @admin.display(description="Refund", ordering="merchant_refund_id")
    def refund(self, obj):
        who = obj.requested_by.get_username() if obj.requested_by else "outside Refund Office"
        return format_html(
            '<span title="{}">{}</span><div class="queue-sub">{} · by {}</div>',
            obj.reason or "no note",
            obj.merchant_refund_id,
            obj.product or "no product",
            who,
        )

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, obj):
        return format_html('<span class="money">{}</span>', format_minor(obj.amount_minor, obj.currency))

    @admin.display(description="Payment")
    def payment_column(self, obj):
        payment = obj.payment
        if payment.amount_minor is None:
            refundable = "not verified yet"
        else:
            refundable = format_minor(payment.amount_minor - payment.amount_refunded_minor, payment.currency)
        earlier = (
            f"earlier refunds: {format_minor(obj.earlier_amount, obj.currency)} ({obj.earlier_count})"
            if obj.earlier_count
            else "no earlier refunds"
        )
        customer = "" if not payment.customer else f" · customer's earlier: {obj.customer_count}"
        return format_html(
            '<span class="money">{}</span> refundable<div class="queue-sub">{}{}</div>', refundable, earlier, customer
        )

    @admin.display(description="Waiting", ordering="created_at")
    def waiting(self, obj):
        return timesince(obj.created_at, depth=1)


def queue_decision(refund, *, user, limit: int) -> str:
    """What `user` can do with a waiting refund, and why not when they cannot."""
    tiers = f"{refund.tier_count} approval{pluralize(refund.tier_count)} so far" if refund.tier_count else ""
    if refund.requested_by_id == user.pk:
        line = mark_safe('<strong class="queue-own">Your request</strong>: someone else approves it')
    elif limit <= 0:
        line = format_html("You have no limit in {}", refund.currency)
    elif limit < refund.amount_minor:
        line = format_html(
            "Over your limit ({}): your approval is a tier, a higher limit finishes it",
            format_minor(limit, refund.currency),
        )
    else:
        line = "Within your limit"
    return format_html("{}{}", line, format_html('<div class="queue-sub">{}</div>', tiers) if tiers else "")
