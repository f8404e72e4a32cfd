"""Admin: presentation and permission gates. Every change goes through a service."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals import services as approval_services
from approvals.models import Approval
from refunds import errors, second_factor
from refunds.services import execution
from refunds.admin_resolve import ResolveByHandMixin
from refunds.admin_scale import CappedCountPaginator, loose_distinct_filter
from refunds.models import ApiToken, Payment, ReasonCode, RefundLog, RefundRequest, RefundStatus, WebhookEvent
from refunds.money import format_minor
from refunds.visibility import (
    api_tokens_visible_to,
    payments_visible_to,
    refund_logs_visible_to,
    refund_visible_to,
    webhook_events_visible_to,
)
from refunds.templatetags.refund_labels import status_label
from refunds.slack import admin as slack_admin  # noqa: F401 - registers the Slack links

_BADGE_COLOURS = {
    RefundStatus.PENDING_APPROVAL: "#b7791f",
    RefundStatus.APPROVED: "#2b6cb0",
    RefundStatus.PROCESSING: "#2b6cb0",
    RefundStatus.SUCCEEDED: "#2f855a",
    RefundStatus.FAILED: "#c53030",
    RefundStatus.REJECTED: "#718096",
    RefundStatus.CANCELED: "#718096",
    RefundStatus.NEEDS_ATTENTION: "#c53030",
}


class VisibleRowsMixin:
    """Lists, searches, change pages (an id out of scope is "doesn't exist"), history pages and raw-id
    pickers read `get_queryset`: narrowed here by the one visibility rule (refunds.visibility)."""

    visible_to = None  # (user) -> QuerySet of the rows that user may see

    def get_queryset(self, request):
        return super().get_queryset(request) & type(self).visible_to(request.user)


class SecondFactorForWritesMixin:
    """Adding, changing or deleting these rows (the approval policy) waits for a fresh second factor:
    the form is not shown until the person confirmed, then they come back to it."""

    def _may_write(self, request) -> bool:
        return self.has_add_permission(request) or self.has_change_permission(request) or self.has_delete_permission(
            request
        )

    def _ask(self, request):
        if self._may_write(request) and not second_factor.session_is_fresh(request):
            return second_factor.ask_for_second_factor(request, request.get_full_path())
        return None

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._ask(request) or super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        return self._ask(request) or super().delete_view(request, object_id, extra_context)

    def changelist_view(self, request, extra_context=None):
        # Only a POST writes from the list (bulk delete, list_editable); reading it needs no code.
        asked = self._ask(request) if request.method == "POST" else None
        return asked or super().changelist_view(request, extra_context)


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RefundLogInline(ReadOnlyMixin, admin.TabularInline):
    model = RefundLog
    verbose_name_plural = "Timeline"
    fields = ("created_at", "event", "status_move", "actor", "message")
    readonly_fields = fields
    ordering = ("created_at", "id")
    extra = 0


    @admin.display(description="Status")
    def status_move(self, obj):
        if not obj.to_status:
            return ""
        labels = [status_label(value) for value in (obj.from_status, obj.to_status) if value]
        return " → ".join(labels)


class ApprovalInline(ReadOnlyMixin, admin.TabularInline):
    model = Approval
    fields = ("created_at", "decision", "approver", "tier", "comment")
    readonly_fields = fields
    extra = 0


def _run_per_row(modeladmin, request, rows, action, *, comment):
    """Call the service once per refund; tell the user what became of each. Messages start
    with "Refund": the admin capitalises a message's first letter, and ids keep their case."""
    for refund in rows:
        try:
            with transaction.atomic():
                result = action(refund=refund, user=request.user, comment=comment)
        except errors.RefundError as error:
            modeladmin.message_user(request, f"Refund {refund}: not done — {error.message}", messages.ERROR)
            continue
        if result.status == RefundStatus.PENDING_APPROVAL:
            note = result.logs.order_by("-id").values_list("message", flat=True).first()
            modeladmin.message_user(request, f"Refund {refund}: {note}", messages.WARNING)
        else:
            modeladmin.message_user(
                request, f"Refund {refund}: {result.get_status_display().lower()}", messages.SUCCESS
            )


def _split_rows(queryset, user, skip_reason) -> tuple[list, list[tuple]]:
    """The selected refunds the action will act on, and the others with why they are skipped."""
    acting, skipped = [], []
    for refund in queryset.select_related("requested_by"):
        reason = skip_reason(refund, user)
        if reason:
            skipped.append((refund, reason))
        else:
            acting.append(refund)
    return acting, skipped


def _confirmed_action(*, title: str, verb: str, service, skip_reason, comment_required: bool = False):
    """An admin action with a confirmation page: the rows it will act on with their total, the
    rows it skips and why, and a comment. Confirming acts on those rows only."""

    def action(modeladmin, request, queryset):
        if not second_factor.session_is_fresh(request):
            return second_factor.ask_for_second_factor(request, request.get_full_path())
        acting, skipped = _split_rows(queryset, request.user, skip_reason)
        if request.POST.get("confirm") == "yes":
            comment = request.POST.get("comment", "").strip()
            if comment_required and not comment:
                modeladmin.message_user(request, "A reason is required.", messages.ERROR)
            else:
                for refund, reason in skipped:
                    modeladmin.message_user(request, f"Refund {refund}: skipped — {reason}", messages.WARNING)
                _run_per_row(modeladmin, request, acting, service, comment=comment)
                return None
        totals: dict[str, int] = {}
        for refund in acting:
            totals[refund.currency] = totals.get(refund.currency, 0) + refund.amount_minor
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "verb": verb,
            "rows": acting,
            "skipped": skipped,
            "totals": [format_minor(total, currency) for currency, total in sorted(totals.items())],
            "comment_required": comment_required,
            "action_name": request.POST.get("action"),
            "opts": modeladmin.model._meta,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/refunds/confirm_action.html", context)

    return action


def _named_action(name: str, description: str, permission: str, **confirm):
    action = admin.action(description=description, permissions=[permission])(_confirmed_action(**confirm))
    action.__name__ = name  # the form's action value, and what the tests and people click
    return action


def _status_words(refund) -> str:
    return refund.get_status_display().lower()


def _undecidable(refund, user) -> str:
    if refund.status != RefundStatus.PENDING_APPROVAL:
        return f"it is {_status_words(refund)}, not waiting for approval"
    if refund.requested_by_id == user.pk:
        return "it is your own request: someone else decides it"
    return ""


def _not_retryable(refund, user) -> str:
    if refund.status != RefundStatus.NEEDS_ATTENTION:
        return f"it is {_status_words(refund)}: only refunds that need attention are retried"
    return ""


def _not_cancelable(refund, user) -> str:
    if refund.status not in (RefundStatus.PENDING_APPROVAL, RefundStatus.APPROVED):
        return f"it is {_status_words(refund)}: only refunds not yet sent to the provider are canceled"
    return ""


approve_action = _named_action(
    "approve_selected", "Approve selected refunds", "approve", title="Approve refunds", verb="Approve",
    skip_reason=_undecidable,
    service=lambda refund, user, comment: approval_services.refund_approve(
        refund_id=refund.pk, approver=user, comment=comment
    ),
)
reject_action = _named_action(
    "reject_selected", "Reject selected refunds", "approve", title="Reject refunds", verb="Reject",
    comment_required=True, skip_reason=_undecidable,
    service=lambda refund, user, comment: approval_services.refund_reject(
        refund_id=refund.pk, approver=user, comment=comment
    ),
)
retry_action = _named_action(
    "retry_selected", "Retry selected refunds (needs attention)", "retry", title="Retry refunds", verb="Retry",
    skip_reason=_not_retryable,
    service=lambda refund, user, comment: execution.refund_retry(refund_id=refund.pk, actor=user, comment=comment),
)
cancel_action = _named_action(
    "cancel_selected", "Cancel selected refunds (not yet sent)", "retry", title="Cancel refunds", verb="Cancel",
    comment_required=True, skip_reason=_not_cancelable,
    service=lambda refund, user, comment: execution.refund_cancel(refund_id=refund.pk, actor=user, comment=comment),
)


PROVIDER_FILTER = loose_distinct_filter("provider", "provider")
CURRENCY_FILTER = loose_distinct_filter("currency", "currency")


@admin.register(RefundRequest)
class RefundRequestAdmin(ResolveByHandMixin, admin.ModelAdmin):
    list_display = (
        "merchant_refund_id",
        "status_badge",
        "amount",
        "provider",
        "connector_transaction_id",
        "product",
        "requested_by",
        "created_at",
        "resolved_at",
    )
    list_filter = ("status", PROVIDER_FILTER, CURRENCY_FILTER, "reason_code", "origin")
    paginator = CappedCountPaginator
    search_fields = ("=merchant_refund_id", "=connector_transaction_id", "=connector_refund_id", "product")
    list_select_related = ("requested_by",)
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = None
    ordering = ("-created_at", "-id")
    actions = [approve_action, reject_action, retry_action, cancel_action, "resolve_selected"]
    inlines = [ApprovalInline, RefundLogInline]
    fieldsets = (
        (
            None,
            {"fields": ("merchant_refund_id", "status", "amount", "reason_code", "reason", "product", "requested_by", "origin")},
        ),
        (
            "Provider",
            {
                "fields": (
                    "provider",
                    "connector_transaction_id",
                    "connector_refund_id",
                    "provider_status",
                    "idempotency_key",
                    "submit_attempts",
                    "unconfirmed_calls",
                    "outcome_checked_at",
                    "error_code",
                    "error_message",
                )
            },
        ),
        ("Times", {"fields": ("created_at", "approved_at", "submitted_at", "resolved_at", "next_action_at")}),
        ("Metadata", {"fields": ("metadata",)}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def get_queryset(self, request):
        return refund_visible_to(request.user)

    def has_add_permission(self, request):
        return False  # refunds are filed through the support form or the API

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request):
        return request.user.has_perm("refunds.approve_refundrequest")

    def has_retry_permission(self, request):
        return request.user.has_perm("refunds.retry_refundrequest")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        colour = _BADGE_COLOURS.get(obj.status, "#4a5568")
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;white-space:nowrap">{}</span>',
            colour,
            obj.get_status_display(),
        )

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, obj):
        return obj.amount_display


@admin.register(RefundLog)
class RefundLogAdmin(VisibleRowsMixin, ReadOnlyMixin, admin.ModelAdmin):
    visible_to = refund_logs_visible_to
    list_display = ("created_at", "refund", "event", "from_status", "to_status", "actor", "message")
    list_filter = ("event",)
    paginator = CappedCountPaginator
    list_select_related = ("refund", "actor")
    raw_id_fields = ("refund",)
    show_full_result_count = False
    search_fields = ("=refund__merchant_refund_id",)


@admin.register(Payment)
class PaymentAdmin(VisibleRowsMixin, ReadOnlyMixin, admin.ModelAdmin):
    visible_to = payments_visible_to

    list_display = (
        "connector_transaction_id", "provider", "amount", "refunded", "status", "dispute", "product", "synced_at",
    )
    list_filter = ("provider", "currency")
    search_fields = ("=connector_transaction_id", "product")
    show_full_result_count = False

    @admin.display(description="Amount")
    def amount(self, obj):
        return format_minor(obj.amount_minor, obj.currency)

    @admin.display(description="Refunded at provider")
    def refunded(self, obj):
        return format_minor(obj.amount_refunded_minor, obj.currency)

    @admin.display(description="Dispute")
    def dispute(self, obj):
        return f"{obj.dispute_id} ({obj.dispute_status})" if obj.dispute_id else "—"


@admin.register(ApiToken)
class ApiTokenAdmin(VisibleRowsMixin, admin.ModelAdmin):
    visible_to = api_tokens_visible_to
    list_display = ("prefix", "user", "created_at", "last_used_at", "revoked")
    fields = ("prefix", "user", "created_at", "last_used_at", "revoked")
    readonly_fields = ("prefix", "user", "created_at", "last_used_at")
    search_fields = ("=prefix",)
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False  # keys are minted by `manage.py createapitoken`, shown once


@admin.register(WebhookEvent)
class WebhookEventAdmin(VisibleRowsMixin, ReadOnlyMixin, admin.ModelAdmin):
    visible_to = webhook_events_visible_to
    list_display = ("received_at", "provider", "type", "event_id", "processed_at", "attempts", "last_error")
    list_filter = ("provider", "type")
    search_fields = ("=event_id",)
    show_full_result_count = False


@admin.register(ReasonCode)
class ReasonCodeAdmin(admin.ModelAdmin):
    """The accounting's reason codes: superusers edit, everyone who files reads them."""

    list_display = ("label", "code", "active", "position")
    list_editable = ("active", "position")
    list_filter = ("active",)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False  # retire a code by making it inactive; refunds keep theirs


# Who is a superuser, who is in which group (who may approve) and whose authenticator is which:
# changed only after a fresh second factor, like the approval policy.
for _model, _base in ((get_user_model(), UserAdmin), (Group, GroupAdmin), (TOTPDevice, TOTPDeviceAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, type(f"Guarded{_base.__name__}", (SecondFactorForWritesMixin, _base), {}))
