"""Admin: "Resolve by hand" for a refund that needs attention. A page of its own (one refund
at a time: the provider's refund id belongs to one refund), reached from the refund's page and
from the changelist's action. The service decides; this page asks and reports."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from refunds import errors, second_factor
from refunds.models import RefundStatus
from refunds.services import resolution

FOUND = "found"
NOT_REFUNDED = "not_refunded"


class ResolveForm(forms.Form):
    outcome = forms.ChoiceField(
        label="What did you find at the provider?",
        widget=forms.RadioSelect,
        choices=[
            (FOUND, "The provider made the refund: record its refund id"),
            (NOT_REFUNDED, "The provider made no refund: fail it"),
        ],
    )
    connector_refund_id = forms.CharField(
        label="The provider's refund id", max_length=255, required=False, help_text="e.g. re_… for Stripe"
    )
    comment = forms.CharField(
        label="How you checked (required)", widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=900
    )

    def clean(self):
        data = super().clean()
        if data.get("outcome") == FOUND and not (data.get("connector_refund_id") or "").strip():
            self.add_error("connector_refund_id", "Enter the refund id you found at the provider.")
        if data.get("outcome") == NOT_REFUNDED and (data.get("connector_refund_id") or "").strip():
            self.add_error(
                "connector_refund_id",
                "You chose \"made no refund\" but entered a refund id: choose the first option to record it.",
            )
        return data


class ResolveByHandMixin:
    """Mixed into the refund admin: the resolve page's URL and view, and a changelist action."""

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                # Per model: the approval queue (a proxy of refunds) inherits this admin.
                name=f"{self.model._meta.app_label}_{self.model._meta.model_name}_resolve",
            )
        ]
        return urls + super().get_urls()

    def resolve_view(self, request, object_id):
        if not self.has_retry_permission(request):
            raise DjangoPermissionDenied
        if not second_factor.session_is_fresh(request):  # money may move from this page
            return second_factor.ask_for_second_factor(request, request.get_full_path())
        refund = self.get_object(request, object_id)  # the same visibility rule as the changelist
        if refund is None:
            raise Http404("No such refund.")
        change_url = reverse("admin:refunds_refundrequest_change", args=[refund.pk])
        form = ResolveForm(request.POST or None)
        if request.method == "POST" and form.is_valid() and refund.status == RefundStatus.NEEDS_ATTENTION:
            try:
                self._resolve(request, refund, form.cleaned_data)
            except errors.RefundError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Resolve refund {refund.merchant_refund_id} by hand",
            "opts": self.model._meta,
            "original": refund,
            "form": form,
            "change_url": change_url,
            "resolvable": refund.status == RefundStatus.NEEDS_ATTENTION,
        }
        return TemplateResponse(request, "admin/refunds/resolve.html", context)

    def _resolve(self, request, refund, data):
        if data["outcome"] == FOUND:
            result = resolution.refund_resolve_found(
                refund_id=refund.pk,
                actor=request.user,
                connector_refund_id=data["connector_refund_id"],
                comment=data["comment"],
            )
        else:
            result = resolution.refund_resolve_not_refunded(refund_id=refund.pk, actor=request.user, comment=data["comment"])
        self.message_user(
            request, f"Refund {result.merchant_refund_id}: {result.get_status_display().lower()}", messages.SUCCESS
        )

    @admin.action(description="Resolve by hand (one refund that needs attention)", permissions=["retry"])
    def resolve_selected(self, request, queryset):
        rows = list(queryset[:2])
        if len(rows) != 1:
            self.message_user(request, "Choose exactly one refund to resolve by hand.", messages.ERROR)
            return None
        if rows[0].status != RefundStatus.NEEDS_ATTENTION:
            self.message_user(
                request,
                f"Refund {rows[0].merchant_refund_id} is {rows[0].get_status_display().lower()}: only refunds that "
                "need attention are resolved by hand.",
                messages.ERROR,
            )
            return None
        return HttpResponseRedirect(reverse("admin:refunds_refundrequest_resolve", args=[rows[0].pk]))
