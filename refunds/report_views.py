"""Report pages: the daily summary, the sales list, the sales CSV import and the Stripe sync."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from refunds import reports, sales
from refunds.models import Sale
from refunds.money import format_minor
from refunds.notifications import duration_display
from refunds.providers import UnknownProvider, provider_names
from refunds.providers.base import ProviderError

# The Stripe sync button runs in the request: a month of payments is a few dozen pages.
SYNC_MAX_DAYS = 31
SALES_PAGE_SIZE = 50

_DATE_WIDGET = forms.DateInput(attrs={"type": "date"})


class DateRangeForm(forms.Form):
    start = forms.DateField(label="From", widget=_DATE_WIDGET)
    end = forms.DateField(label="To (inclusive)", widget=_DATE_WIDGET)
    max_days = reports.MAX_RANGE_DAYS

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The end date is before the start date.")
            days = (end - start).days + 1
            if days > self.max_days:
                raise forms.ValidationError(
                    f"The range covers {days} days; pick at most {self.max_days} days."
                )
        return data


class SalesSyncForm(DateRangeForm):
    max_days = SYNC_MAX_DAYS


class SalesImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="Columns: " + ", ".join(sales.SALES_IMPORT_COLUMNS))


class SalesFilterForm(forms.Form):
    source = forms.ChoiceField(
        label="Source", required=False, choices=[("", "All sources"), *Sale.Source.choices]
    )
    product = forms.CharField(label="Product", required=False, max_length=200)


def _percent(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _yesterday_range() -> dict:
    yesterday = reports.business_yesterday()
    return {"start": yesterday, "end": yesterday}


@login_required
@permission_required("refunds.view_reports", raise_exception=True)
def summary_view(request):
    if "start" in request.GET or "end" in request.GET:
        form = DateRangeForm(request.GET)
        start, end = (form.cleaned_data["start"], form.cleaned_data["end"]) if form.is_valid() else (None, None)
    else:
        start, end = _yesterday_range().values()
        form = DateRangeForm(initial={"start": start, "end": end})
    context = {"form": form}
    if start is not None:
        summary = reports.refund_summary(start=start, end=end)
        rates = reports.product_refund_rates(start=start, end=end)
        context.update(
            summary=summary,
            currencies=[
                {
                    "currency": c.currency,
                    "count": c.count,
                    "amount": format_minor(c.amount_minor, c.currency),
                    "statuses": [
                        {"status": t.status, "label": t.status_label, "count": t.count,
                         "amount": format_minor(t.amount_minor, t.currency)}
                        for t in c.by_status
                    ],
                }
                for c in summary.currencies
            ],
            decisions={
                "approval_rate": _percent(summary.approval_rate),
                "auto_share": _percent(summary.auto_approved_share),
            },
            durations=[
                {"label": "Time to resolution", "stats": summary.resolution,
                 "average": duration_display(summary.resolution.average),
                 "p90": duration_display(summary.resolution.p90)},
                {"label": "Time to approval", "stats": summary.approval,
                 "average": duration_display(summary.approval.average),
                 "p90": duration_display(summary.approval.p90)},
            ],
            rates=[
                {
                    "product": r.product_label,
                    "currency": r.currency,
                    "refunded_count": r.refunded_count,
                    "refunded": format_minor(r.refunded_minor, r.currency),
                    "sold_count": r.sold_count,
                    "sold": format_minor(r.sold_minor, r.currency) if r.sold_count else "—",
                    "rate_amount": _percent(r.rate_by_amount),
                    "rate_count": _percent(r.rate_by_count),
                    "sources": ", ".join(Sale.Source(s).label for s in r.sales_sources) or "No sales known",
                }
                for r in rates
            ],
            last_day=end,
            first_day=start,
            previous_day=start - datetime.timedelta(days=1),
            next_day=start + datetime.timedelta(days=1),
        )
    return render(request, "reports/summary.html", context)


@login_required
@permission_required("refunds.view_sale", raise_exception=True)
def sales_list_view(request):
    filters = SalesFilterForm(request.GET or None)
    qs = Sale.objects.select_related("imported_by").order_by("-sold_at", "-id")
    query = {}
    if filters.is_bound and filters.is_valid():
        if filters.cleaned_data["source"]:
            qs = qs.filter(source=filters.cleaned_data["source"])
            query["source"] = filters.cleaned_data["source"]
        if filters.cleaned_data["product"]:
            qs = qs.filter(product=filters.cleaned_data["product"])
            query["product"] = filters.cleaned_data["product"]
    page = Paginator(qs, SALES_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {"sale": sale, "amount": format_minor(sale.amount_minor, sale.currency)} for sale in page.object_list
    ]
    can_sync = request.user.has_perm("refunds.add_sale") and "stripe" in provider_names()
    querystring = QueryDict(mutable=True)
    querystring.update(query)
    return render(
        request,
        "reports/sales.html",
        {
            "filters": filters if filters.is_bound else SalesFilterForm(),
            "page": page,
            "rows": rows,
            "querystring": querystring.urlencode(),
            "can_sync": can_sync,
            "sync_form": SalesSyncForm(initial=_yesterday_range()),
            "time_zone": str(reports.business_zone()),
        },
    )


@login_required
@permission_required("refunds.add_sale", raise_exception=True)
@require_POST
def sales_sync_view(request):
    form = SalesSyncForm(request.POST)
    if not form.is_valid():
        for error in form.non_field_errors() + [e for f in form for e in f.errors]:
            messages.error(request, f"Sync not started: {error}")
        return redirect("reports-sales")
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    try:
        result = sales.sales_sync(provider="stripe", start=start, end=end)
    except ProviderError as error:
        messages.error(request, f"Stripe could not be read ({error.code}): {error.message} Nothing else changed; try again.")
    except (sales.SalesSyncUnavailable, UnknownProvider):
        messages.error(request, "Sales cannot be synced: Stripe is not enabled.")
    else:
        messages.success(
            request,
            f"Synced {result.total} Stripe payment{'s' if result.total != 1 else ''} from {start} to {end}: "
            f"{result.created} new, {result.updated} updated.",
        )
    return redirect(f"{reverse('reports-sales')}?source=stripe")


@login_required
@permission_required("refunds.add_sale", raise_exception=True)
def sales_import_view(request):
    errors: list[str] = []
    total_errors = 0
    if request.method == "POST":
        form = SalesImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > sales.SALES_IMPORT_MAX_BYTES:
                form.add_error(
                    "file",
                    f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is "
                    f"{sales.SALES_IMPORT_MAX_BYTES // 1024 // 1024} MB. Split it into smaller files.",
                )
            else:
                try:
                    result = sales.sales_import_csv(data=upload.read(), batch_name=upload.name, user=request.user)
                except sales.SalesImportError as error:
                    errors, total_errors = error.errors, error.total_errors
                    form.add_error(
                        None,
                        f"Nothing was imported: {total_errors} problem{'s' if total_errors != 1 else ''} in the file.",
                    )
                else:
                    messages.success(
                        request,
                        f"Imported {upload.name}: {result.created} new sale{'s' if result.created != 1 else ''}, "
                        f"{result.updated} updated.",
                    )
                    return redirect(f"{reverse('reports-sales')}?source=import")
    else:
        form = SalesImportForm()
    return render(
        request,
        "reports/sales_import.html",
        {
            "form": form,
            "errors": errors,
            "more_errors": max(total_errors - len(errors), 0),
            "columns": sales.SALES_IMPORT_COLUMNS,
            "max_mb": sales.SALES_IMPORT_MAX_BYTES // 1024 // 1024,
            "time_zone": str(reports.business_zone()),
        },
    )
