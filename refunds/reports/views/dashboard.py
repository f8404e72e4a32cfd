"""GET /reports/: the reports dashboard (charts, with their numbers as tables), and the
dashboard panel of the admin index."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render
from django.utils import timezone

from refunds.models import RefundStatus
from refunds.reports.dashboard import Dashboard, dashboard_default_range, dashboard_get
from refunds.reports.formatting import duration_display, duration_hours, money_display, money_major, percent_value
from refunds.reports.forms import DashboardRangeForm
from refunds.services.slack_reminders import refunds_past_threshold, reminder_thresholds

STATUS_LABELS = dict(RefundStatus.choices)


def dashboard_context(dashboard: Dashboard) -> dict:
    """What the templates show, and the charts' data (json_script'ed: same numbers as the tables)."""
    volume, resolution, queue = dashboard.volume, dashboard.resolution, dashboard.queue
    show = _volume_cell(volume.measure)
    products = _product_rows(dashboard)
    return {
        "dashboard": dashboard,
        "statuses": [(s, STATUS_LABELS[s]) for s in volume.statuses],
        "volume_rows": [
            {"day": d.day, "cells": [show(v) for v in d.values], "total": show(d.total)} for d in volume.days
        ],
        "volume_totals": [show(v) for v in volume.status_totals],
        "volume_total": show(volume.total),
        "requested_amounts": [money_display(m, c) for c, m in volume.requested_minor.items()],
        "refunded_amounts": [money_display(m, c) for c, m in volume.succeeded_minor.items()],
        "median_ttr": duration_display(resolution.median_seconds),
        "p90_ttr": duration_display(resolution.p90_seconds),
        "resolution_rows": [
            {
                "day": d.day,
                "resolved": d.resolved,
                "average_hours": duration_hours(d.average_seconds),
                "p90_hours": duration_hours(d.p90_seconds),
            }
            for d in resolution.days
        ],
        "queue_oldest_age": duration_display(queue.oldest.age) if queue.oldest else None,
        "queue_oldest_amount": (
            money_display(queue.oldest.amount_minor, queue.oldest.currency) if queue.oldest else None
        ),
        "products": products,
        "charts": _charts(dashboard, products),
        "range_days": (dashboard.end - dashboard.start).days + 1,
    }


def _volume_cell(measure: str):
    """A day's volume as the table shows it: a count, or an amount in the measured currency."""
    return (lambda v: v) if measure == "count" else (lambda v: money_display(v, measure))


def _product_rows(dashboard: Dashboard) -> list[dict] | None:
    if dashboard.products is None:
        return None
    return [
        {
            "product": p.product_label,
            "currency": p.currency,
            "refunded_count": p.refunded_count,
            "refunded": money_display(p.refunded_minor, p.currency),
            "sold_count": p.sold_count,
            "sold": money_display(p.sold_minor, p.currency),
            "rate_by_amount": percent_value(p.rate_by_amount),
            "rate_by_count": percent_value(p.rate_by_count),
            "sources": ", ".join(p.sales_sources),
        }
        for p in dashboard.products
    ]


def _charts(dashboard: Dashboard, products: list[dict] | None) -> dict:
    volume, resolution, queue = dashboard.volume, dashboard.resolution, dashboard.queue
    measure = volume.measure
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
                        d.values[i] if measure == "count" else money_major(d.values[i], measure)
                        for d in volume.days
                    ],
                }
                for i, status in enumerate(volume.statuses)
            ],
        },
        "resolution": {
            "labels": [d.day.isoformat() for d in resolution.days],
            "average": [_float(duration_hours(d.average_seconds)) for d in resolution.days],
            "p90": [_float(duration_hours(d.p90_seconds)) for d in resolution.days],
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
    return charts


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
    context.update(_past_threshold())
    status = 200 if form.is_valid() else 400
    return render(request, "reports/dashboard.html", context, status=status)


def _past_threshold() -> dict:
    """Refunds waiting for approval past the first Slack reminder threshold, oldest first."""
    thresholds = reminder_thresholds()
    if not thresholds:
        return {}
    waiting = refunds_past_threshold()
    now = timezone.now()
    rows = [
        {"refund": r, "amount": r.amount_display, "waited": duration_display(now - r.created_at)}
        for r in waiting[:20]
    ]
    return {"past_threshold": rows, "past_threshold_count": waiting.count(),
            "past_threshold_hours": f"{thresholds[0] / 60:g}"}


def dashboard_panel_context(user) -> dict:
    """The admin index's panel: the last 30 days' tiles, daily volume and the queue."""
    if not user.has_perm("refunds.view_reports"):
        return {}
    start, end = dashboard_default_range()
    return dashboard_context(dashboard_get(start=start, end=end, products=False))
