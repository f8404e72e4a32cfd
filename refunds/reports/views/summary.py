"""GET /reports/summary/: the daily summary (yesterday by default, or any range of days)."""

from __future__ import annotations

import datetime

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render

from refunds.models import Sale
from refunds.reports.calendar import business_yesterday
from refunds.reports.formatting import duration_display, money_display, percent_display
from refunds.reports.forms import DateRangeForm
from refunds.reports.summary import product_refund_rates, refund_summary


@login_required
@permission_required("refunds.view_reports", raise_exception=True)
def summary_view(request):
    if "start" in request.GET or "end" in request.GET:
        form = DateRangeForm(request.GET)
        start, end = (form.cleaned_data["start"], form.cleaned_data["end"]) if form.is_valid() else (None, None)
    else:
        start = end = business_yesterday()
        form = DateRangeForm(initial={"start": start, "end": end})
    context = {"form": form}
    if start is not None:
        summary = refund_summary(start=start, end=end)
        rates = product_refund_rates(start=start, end=end)
        context.update(
            summary=summary,
            currencies=[
                {
                    "currency": c.currency,
                    "count": c.count,
                    "amount": money_display(c.amount_minor, c.currency),
                    "statuses": [
                        {"status": t.status, "label": t.status_label, "count": t.count,
                         "amount": money_display(t.amount_minor, t.currency)}
                        for t in c.by_status
                    ],
                }
                for c in summary.currencies
            ],
            decisions={
                "approval_rate": percent_display(summary.approval_rate),
                "auto_share": percent_display(summary.auto_approved_share),
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
                    "refunded": money_display(r.refunded_minor, r.currency),
                    "sold_count": r.sold_count,
                    "sold": money_display(r.sold_minor, r.currency) if r.sold_count else "—",
                    "rate_amount": percent_display(r.rate_by_amount),
                    "rate_count": percent_display(r.rate_by_count),
                    "sources": ", ".join(Sale.Source(s).label for s in r.sales_sources) or "No sales known",
                }
                for r in rates
            ],
            disputed=_disputed_rows(summary),
            last_day=end,
            first_day=start,
            previous_day=start - datetime.timedelta(days=1),
            next_day=start + datetime.timedelta(days=1),
        )
    return render(request, "reports/summary.html", context)


def _disputed_rows(summary) -> list[dict]:
    """"Refunded and disputed" as the page shows it."""
    return [
        {"refund": d.merchant_refund_id, "payment": d.connector_transaction_id, "provider": d.provider,
         "amount": money_display(d.amount_minor, d.currency), "dispute": d.dispute_id,
         "dispute_status": d.dispute_status, "disputed_at": d.disputed_at}
        for d in summary.refunded_and_disputed
    ]
