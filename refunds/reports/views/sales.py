"""/reports/sales/: the sales list, the sales CSV import and the Stripe sync button. The work
is in refunds.reports.sales; these parse, check permission and show."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from refunds.providers import UnknownProvider, provider_names
from refunds.providers.base import ProviderError
from refunds.reports import sales
from refunds.reports.calendar import business_yesterday, business_zone
from refunds.reports.formatting import money_display
from refunds.reports.forms import SalesFilterForm, SalesImportForm, SalesSyncForm
from refunds.visibility import sales_visible_to

SALES_PAGE_SIZE = 50


@login_required
@permission_required("refunds.view_sale", raise_exception=True)
def sales_list_view(request):
    filters = SalesFilterForm(request.GET or None)
    qs = sales_visible_to(request.user).select_related("imported_by").order_by("-sold_at", "-id")
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
        {"sale": sale, "amount": money_display(sale.amount_minor, sale.currency)} for sale in page.object_list
    ]
    can_sync = request.user.has_perm("refunds.add_sale") and "stripe" in provider_names()
    yesterday = business_yesterday()
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
            "sync_form": SalesSyncForm(initial={"start": yesterday, "end": yesterday}),
            "time_zone": str(business_zone()),
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
            "time_zone": str(business_zone()),
        },
    )
