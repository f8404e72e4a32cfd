"""Selectors behind the reports dashboard (/reports/ and the admin index panel).

Everything is aggregated in SQL: a day is a day in the business time zone
(settings.REPORTS_TIME_ZONE), a range is [start 00:00, end + 1 00:00) there (calendar.report_range),
and each chart is one GROUP BY over an indexed range of RefundRequest (created_at for the
volume and time to resolution, (status, created_at) for the approval queue), so a 30-day range
answers in tens of milliseconds over a million rows. Refunds count on the day they were
requested, as in the daily summary (refunds/reports/summary.py). Percentiles are PostgreSQL's
percentile_cont; on SQLite (local runs) the same linear interpolation is computed in Python.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from refunds.models import FINAL_STATUSES, RefundRequest, RefundStatus
from refunds.reports.calendar import business_today, business_zone, days_between, report_range
from refunds.reports.summary import ProductRate, product_refund_rates, report_queries

# The order the statuses stack in, bottom to top: where refunds end up first, open ones on top.
VOLUME_STATUSES = [
    RefundStatus.SUCCEEDED,
    RefundStatus.FAILED,
    RefundStatus.REJECTED,
    RefundStatus.CANCELED,
    RefundStatus.NEEDS_ATTENTION,
    RefundStatus.PROCESSING,
    RefundStatus.APPROVED,
    RefundStatus.PENDING_APPROVAL,
]

# (label, lower bound, upper bound) of a pending refund's age; the last bucket is open-ended.
QUEUE_AGE_BUCKETS = [
    ("under 1 hour", timedelta(0), timedelta(hours=1)),
    ("1–4 hours", timedelta(hours=1), timedelta(hours=4)),
    ("4–24 hours", timedelta(hours=4), timedelta(hours=24)),
    ("1–3 days", timedelta(days=1), timedelta(days=3)),
    ("over 3 days", timedelta(days=3), None),
]

TOP_PRODUCTS = 10


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """The same answer as PostgreSQL's percentile_cont over `values` (SQLite has none)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- daily volume by status ------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeDay:
    day: date
    # In VOLUME_STATUSES' order: the number of refunds requested that day (measure "count") or
    # their amount in minor units of the measured currency.
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True)
class Volume:
    measure: str  # "count" or a currency code
    statuses: tuple[str, ...]
    days: tuple[VolumeDay, ...]
    currencies: tuple[str, ...]  # every currency requested in the range (the measures on offer)
    requested_count: int
    requested_minor: dict[str, int] = field(default_factory=dict)  # currency -> amount requested
    succeeded_minor: dict[str, int] = field(default_factory=dict)  # currency -> amount of those succeeded

    @property
    def status_totals(self) -> tuple[int, ...]:
        return tuple(sum(day.values[i] for day in self.days) for i in range(len(self.statuses)))

    @property
    def total(self) -> int:
        return sum(self.status_totals)


def dashboard_volume(*, start: date, end: date, tz: str | None = None, measure: str = "count") -> Volume:
    """Refunds requested per day (of created_at, in the business zone) and status: counted, or
    summed in one currency. Statuses are today's: a refund requested on Monday and succeeded
    on Tuesday counts on Monday as succeeded."""
    low, high = report_range(start=start, end=end, tz=tz)
    rows = (
        RefundRequest.objects.filter(created_at__gte=low, created_at__lt=high)
        .annotate(day=TruncDate("created_at", tzinfo=business_zone(tz)))
        .values("day", "status", "currency")
        .annotate(n=Count("*"), minor=Sum("amount_minor"))
        .order_by()
    )
    cells: dict[tuple[date, str], int] = defaultdict(int)
    requested_minor: dict[str, int] = defaultdict(int)
    succeeded_minor: dict[str, int] = defaultdict(int)
    count = 0
    for row in rows:
        count += row["n"]
        requested_minor[row["currency"]] += row["minor"]
        if row["status"] == RefundStatus.SUCCEEDED:
            succeeded_minor[row["currency"]] += row["minor"]
        if measure == "count":
            cells[row["day"], row["status"]] += row["n"]
        elif row["currency"] == measure:
            cells[row["day"], row["status"]] += row["minor"]
    statuses = tuple(str(s) for s in VOLUME_STATUSES)
    days = tuple(VolumeDay(day, tuple(cells[day, s] for s in statuses)) for day in days_between(start, end))
    return Volume(
        measure=measure,
        statuses=statuses,
        days=days,
        currencies=tuple(sorted(requested_minor)),
        requested_count=count,
        requested_minor=dict(sorted(requested_minor.items())),
        succeeded_minor=dict(sorted(succeeded_minor.items())),
    )


# --- time to resolution ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolutionDay:
    day: date
    resolved: int
    average_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class Resolution:
    days: tuple[ResolutionDay, ...]
    resolved: int
    median_seconds: float | None
    p90_seconds: float | None


def dashboard_resolution(*, start: date, end: date, tz: str | None = None) -> Resolution:
    """Time to resolution (resolved_at − created_at) of the refunds requested in the range that
    reached a final status (succeeded, failed, rejected, canceled), per day they were
    requested (as the daily summary counts it): average and 90th percentile; and the range's
    median and 90th percentile."""
    low, high = report_range(start=start, end=end, tz=tz)
    if connection.vendor == "postgresql":
        per_day, overall = _resolution_in_postgresql(low, high, tz=str(business_zone(tz)))
    else:
        resolved = RefundRequest.objects.filter(
            created_at__gte=low, created_at__lt=high, status__in=FINAL_STATUSES, resolved_at__isnull=False
        ).order_by()
        per_day, overall = _resolution_in_python(
            resolved.annotate(day=TruncDate("created_at", tzinfo=business_zone(tz)))
        )
    days = []
    for d in days_between(start, end):
        row = per_day.get(d)
        days.append(
            ResolutionDay(d, row["n"], row["avg"], row["p90"]) if row else ResolutionDay(d, 0, None, None)
        )
    return Resolution(
        days=tuple(days), resolved=overall["n"], median_seconds=overall["median"], p90_seconds=overall["p90"]
    )


# One pass over the range for both the days and the whole range (GROUPING SETS). date_part
# gives double precision (EXTRACT would compute in numeric, several times slower), and the
# covering index refund_created_cover_idx makes it an index-only scan. A little more memory
# for the sort keeps it off the disk.
_RESOLUTION_SQL = """
SELECT day, GROUPING(day) AS whole_range, count(*) AS n, avg(seconds) AS avg,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90
FROM (
    SELECT (created_at AT TIME ZONE %(tz)s)::date AS day, date_part('epoch', resolved_at - created_at) AS seconds
    FROM {table}
    WHERE created_at >= %(low)s AND created_at < %(high)s AND status = ANY(%(final)s) AND resolved_at IS NOT NULL
) AS resolved
GROUP BY GROUPING SETS ((day), ())
"""


def _resolution_in_postgresql(low: datetime, high: datetime, *, tz: str):
    sql = _RESOLUTION_SQL.format(table=RefundRequest._meta.db_table)
    with report_queries(), connection.cursor() as cursor:
        cursor.execute(sql, {"tz": tz, "low": low, "high": high, "final": sorted(str(s) for s in FINAL_STATUSES)})
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    per_day = {row["day"]: row for row in rows if not row["whole_range"]}
    [overall] = [row for row in rows if row["whole_range"]]
    return per_day, overall


def _resolution_in_python(resolved):
    by_day: dict[date, list[float]] = defaultdict(list)
    for day, created_at, resolved_at in resolved.values_list("day", "created_at", "resolved_at"):
        by_day[day].append((resolved_at - created_at).total_seconds())
    per_day = {
        day: {"n": len(values), "avg": sum(values) / len(values), "p90": percentile_cont(values, 0.9)}
        for day, values in by_day.items()
    }
    every = [value for values in by_day.values() for value in values]
    overall = {"n": len(every), "median": percentile_cont(every, 0.5), "p90": percentile_cont(every, 0.9)}
    return per_day, overall


# --- the approval queue's age ----------------------------------------------------------------


@dataclass(frozen=True)
class QueueBucket:
    label: str
    count: int


@dataclass(frozen=True)
class OldestPending:
    merchant_refund_id: str
    created_at: datetime
    age: timedelta
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Queue:
    buckets: tuple[QueueBucket, ...]
    oldest: OldestPending | None
    as_of: datetime

    @property
    def pending(self) -> int:
        return sum(bucket.count for bucket in self.buckets)


def dashboard_queue(*, now: datetime | None = None) -> Queue:
    """Refunds waiting for approval right now, by how long they have waited, and the oldest.
    Not bound to the range: the queue is today's."""
    now = now or timezone.now()
    pending = RefundRequest.objects.filter(status=RefundStatus.PENDING_APPROVAL).order_by()
    counts = {}
    for n, (label, younger, older) in enumerate(QUEUE_AGE_BUCKETS):
        condition = Q(created_at__lte=now - younger)
        if older is not None:
            condition &= Q(created_at__gt=now - older)
        counts[f"b{n}"] = Count("created_at", filter=condition)
    totals = pending.aggregate(**counts, oldest_at=Min("created_at"))
    oldest = None
    if totals["oldest_at"] is not None:
        row = pending.order_by("created_at", "id").values(
            "merchant_refund_id", "created_at", "amount_minor", "currency"
        )[0]
        oldest = OldestPending(**row, age=max(timedelta(0), now - row["created_at"]))
    buckets = tuple(QueueBucket(label, totals[f"b{n}"]) for n, (label, _, _) in enumerate(QUEUE_AGE_BUCKETS))
    return Queue(buckets=buckets, oldest=oldest, as_of=now)


# --- all of it ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    start: date
    end: date
    tz: str
    volume: Volume
    resolution: Resolution
    queue: Queue
    products: tuple[ProductRate, ...] | None  # None: not asked for (the admin panel)


def dashboard_get(
    *, start: date, end: date, tz: str | None = None, measure: str = "count", products: bool = True
) -> Dashboard:
    tz = tz or settings.REPORTS_TIME_ZONE
    with report_queries():  # one transaction: each part's queries planned for this range
        return Dashboard(
            start=start,
            end=end,
            tz=tz,
            volume=dashboard_volume(start=start, end=end, tz=tz, measure=measure),
            resolution=dashboard_resolution(start=start, end=end, tz=tz),
            queue=dashboard_queue(),
            products=(
                tuple(product_refund_rates(start=start, end=end, tz=tz, limit=TOP_PRODUCTS)) if products else None
            ),
        )


def dashboard_default_range(*, tz: str | None = None, days: int = 30) -> tuple[date, date]:
    """The last `days` days up to today, in the business zone."""
    today = business_today(tz=tz)
    return today - timedelta(days=days - 1), today
