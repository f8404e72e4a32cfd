"""GET /reports/: the reports dashboard (charts, with their numbers as tables), and the
dashboard panel of the admin index."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render

from refunds.dashboard import Dashboard, dashboard_default_range, dashboard_get
from refunds.money import format_minor, is_known_currency, minor_to_decimal
from refunds.models import RefundStatus

MAX_RANGE_DAYS = 366
STATUS_LABELS = dict(RefundStatus.choices)


class DashboardRangeForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    measure = forms.CharField(label="Daily volume in", required=False, max_length=5)

    def clean_measure(self):
        measure = (self.cleaned_data.get("measure") or "count").strip()
        if measure != "count" and not is_known_currency(measure.upper()):
            raise forms.ValidationError("Choose “Number of refunds” or a currency.")
        return measure if measure == "count" else measure.upper()

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if start > end:
                self.add_error("end", "The end date is before the start date.")
            elif (end - start).days + 1 > MAX_RANGE_DAYS:
                self.add_error(
                    None,
                    f"Choose at most {MAX_RANGE_DAYS} days; {start:%Y-%m-%d} to {end:%Y-%m-%d} "
                    f"is {(end - start).days + 1} days.",
                )
        return cleaned


def _hours(seconds: float | None) -> Decimal | None:
    return None if seconds is None else Decimal(seconds / 3600).quantize(Decimal("0.1"))


def duration_display(seconds: float | None) -> str:
    """3 days 4 h / 5.2 h / 12 min: the unit people think of for that length."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{max(0, round(seconds / 60))} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    days, rest = divmod(int(seconds), 86400)
    return f"{days} days {rest // 3600} h"


def _percent(rate: Decimal | None) -> Decimal | None:
    return None if rate is None else (rate * 100).quantize(Decimal("0.1"))


def dashboard_context(dashboard: Dashboard) -> dict:
    """What the templates show, and the charts' data (json_script'ed: same numbers as the tables)."""
    volume, resolution, queue = dashboard.volume, dashboard.resolution, dashboard.queue
    measure = volume.measure
    show = (lambda v: v) if measure == "count" else (lambda v: format_minor(v, measure))
    volume_rows = [
        {"day": d.day, "cells": [show(v) for v in d.values], "total": show(d.total)} for d in volume.days
    ]
    resolution_rows = [
        {
            "day": d.day,
            "resolved": d.resolved,
            "average_hours": _hours(d.average_seconds),
            "p90_hours": _hours(d.p90_seconds),
        }
        for d in resolution.days
    ]
    products = None
    if dashboard.products is not None:
        products = [
            {
                "product": p.product or "(no product)",
                "currency": p.currency,
                "refunded_count": p.refunded_count,
                "refunded": format_minor(p.refunded_minor, p.currency),
                "sold_count": p.sold_count,
                "sold": format_minor(p.sold_minor, p.currency),
                "rate_by_amount": _percent(p.rate_by_amount),
                "rate_by_count": _percent(p.rate_by_count),
                "sources": ", ".join(p.sales_sources),
            }
            for p in dashboard.products
        ]
    charts = {
        "volume": {
            "measure": measure,
            "unit": "refunds" if measure == "count" else measure,
            "labels": [d.day.isoformat() for d in volume.days],
            "datasets": [
                {
                    "status": status,
                    "label": STATUS_LABELS[status],
                    # Amounts in major units for the axis; the table has them exactly.
                    "data": [
                        d.values[i] if measure == "count" else float(minor_to_decimal(d.values[i], measure))
                        for d in volume.days
                    ],
                }
                for i, status in enumerate(volume.statuses)
            ],
        },
        "resolution": {
            "labels": [d.day.isoformat() for d in resolution.days],
            "average": [_float(_hours(d.average_seconds)) for d in resolution.days],
            "p90": [_float(_hours(d.p90_seconds)) for d in resolution.days],
        },
        "queue": {
            "labels": [bucket.label for bucket in queue.buckets],
            "data": [bucket.count for bucket in queue.buckets],
        },
    }
    if products is not None:
        rated = [p for p in products if p["rate_by_amount"] is not None]
        charts["products"] = {
            "labels": [f"{p['product']} ({p['currency']})" for p in rated],
            "data": [float(p["rate_by_amount"]) for p in rated],
        }
    return {
        "dashboard": dashboard,
        "statuses": [(s, STATUS_LABELS[s]) for s in volume.statuses],
        "volume_rows": volume_rows,
        "volume_totals": [show(v) for v in volume.status_totals],
        "volume_total": show(volume.total),
        "requested_amounts": [format_minor(m, c) for c, m in volume.requested_minor.items()],
        "refunded_amounts": [format_minor(m, c) for c, m in volume.succeeded_minor.items()],
        "median_ttr": duration_display(resolution.median_seconds),
        "p90_ttr": duration_display(resolution.p90_seconds),
        "resolution_rows": resolution_rows,
        "queue_oldest_age": duration_display(queue.oldest.age.total_seconds()) if queue.oldest else None,
        "queue_oldest_amount": (
            format_minor(queue.oldest.amount_minor, queue.oldest.currency) if queue.oldest else None
        ),
        "products": products,
        "charts": charts,
        "range_days": (dashboard.end - dashboard.start).days + 1,
    }


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@login_required
@permission_required("refunds.view_reports", raise_exception=True)
def reports_dashboard(request):
    default_start, default_end = dashboard_default_range()
    data = request.GET.copy()
    data.setdefault("start", default_start.isoformat())
    data.setdefault("end", default_end.isoformat())
    data.setdefault("measure", "count")
    form = DashboardRangeForm(data)
    context = {"form": form, "tz": settings.REPORTS_TIME_ZONE}
    if form.is_valid():
        dashboard = dashboard_get(
            start=form.cleaned_data["start"], end=form.cleaned_data["end"], measure=form.cleaned_data["measure"]
        )
        context.update(dashboard_context(dashboard))
        currencies = list(dashboard.volume.currencies)
        if dashboard.volume.measure != "count" and dashboard.volume.measure not in currencies:
            currencies.append(dashboard.volume.measure)
        context["measures"] = [("count", "Number of refunds")] + [(c, f"Amount in {c}") for c in currencies]
    status = 200 if form.is_valid() else 400
    return render(request, "reports/dashboard.html", context, status=status)


def dashboard_panel_context(user) -> dict:
    """The admin index's panel: the last 30 days' tiles, daily volume and the queue."""
    if not user.has_perm("refunds.view_reports"):
        return {}
    start, end = dashboard_default_range()
    return dashboard_context(dashboard_get(start=start, end=end, products=False))
