"""Report selectors: the daily summary and refund rate by product.

Every figure is aggregated in the database over an indexed range (created_at, resolved_at,
(status, created_at), (product, created_at), sold_at), so a day or a month of a table of
millions answers without pulling rows into Python. Percentiles use PostgreSQL's
percentile_cont; elsewhere the same interpolated value is read with ORDER BY … OFFSET.

How these are counted (also shown on the summary page):
- a refund belongs to the day it was requested (created_at in the business time zone);
- approval rate = approved (by a person or automatically) / (approved + rejected);
- auto-approved share = auto-approved / all approved;
- time to resolution = resolved_at − created_at of refunds in a final status;
  time to approval = approved_at − created_at;
- failures: refunds failed or needing attention, by provider and error code;
- refunded and disputed: refunds flagged (disputed_at) in the range because a dispute opened on
  their payment after they had succeeded: the money is at risk twice;
- refund rate by product: refunds that succeeded with resolved_at in the range over sales
  sold in the range, per product and currency.
"""

from __future__ import annotations

import contextlib
import datetime
import math
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Aggregate, Avg, Count, DurationField, F, Max, Min, Q, QuerySet, Sum

from approvals.models import Approval
from refunds.models import FINAL_STATUSES, RefundRequest, RefundStatus, Sale
from refunds.reports.calendar import business_zone, report_range
from refunds.reports.disputed import DisputedRefund, refunds_disputed_after_success

NO_PRODUCT_LABEL = "(no product)"
FAILURE_STATUSES = (RefundStatus.FAILED, RefundStatus.NEEDS_ATTENTION)


@contextlib.contextmanager
def report_queries():
    """PostgreSQL compiles queries whose estimated cost passes jit_above_cost; for these
    aggregates over an index range (a month: ~100k rows) compiling costs more (~200 ms) than
    it saves. The percentiles sort a month of intervals: room for that in memory rather than
    a temp file. Statements are prepared per connection (settings: DATABASE_PREPARED_STATEMENTS),
    and after five runs PostgreSQL may plan one once for any range, which made these queries
    slower; planned for each range they take the same time either way (bench/README.md,
    "Prepared statements"). SET LOCAL ends with the transaction (the caller's, if it has one)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '32MB'")
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


# --- percentiles --------------------------------------------------------------------------


class _PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate: works on double precision and on interval."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False

    def __init__(self, expression, *, fraction: float, **extra):
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


@dataclass(frozen=True)
class _Span:
    """finish − begin over the rows matching `condition` (and having both timestamps)."""

    name: str
    begin: str
    finish: str
    condition: Q = Q()

    @property
    def rows(self) -> Q:
        return self.condition & Q(**{f"{self.begin}__isnull": False, f"{self.finish}__isnull": False})

    @property
    def expression(self):
        return F(self.finish) - F(self.begin)


def _durations(qs: QuerySet, spans: list[_Span], *, fraction: float = 0.9) -> dict[str, DurationStats]:
    """Count, mean and the `fraction` percentile (linear interpolation, as percentile_cont) of
    each span over `qs`: on PostgreSQL all in one scan, elsewhere a few small queries each."""
    if connection.vendor == "postgresql":
        return _durations_postgresql(qs, spans, fraction=fraction)
    return {
        span.name: _duration_stats_portable(
            qs.filter(span.condition), begin=span.begin, finish=span.finish, fraction=fraction
        )
        for span in spans
    }


def _durations_postgresql(qs: QuerySet, spans: list[_Span], *, fraction: float) -> dict[str, DurationStats]:
    aggregates = {}
    for span in spans:
        aggregates[f"{span.name}__n"] = Count("pk", filter=span.rows)
        aggregates[f"{span.name}__mean"] = Avg(span.expression, filter=span.rows, output_field=DurationField())
        aggregates[f"{span.name}__pct"] = _PercentileCont(
            span.expression, fraction=fraction, filter=span.rows, output_field=DurationField()
        )
    row = qs.aggregate(**aggregates)
    return {
        span.name: DurationStats(
            count=row[f"{span.name}__n"], average=row[f"{span.name}__mean"], p90=row[f"{span.name}__pct"]
        )
        for span in spans
    }


def _duration_stats_postgresql(qs: QuerySet, *, begin: str, finish: str, fraction: float) -> DurationStats:
    return _durations_postgresql(qs, [_Span("span", begin, finish)], fraction=fraction)["span"]


def _duration_stats_portable(qs: QuerySet, *, begin: str, finish: str, fraction: float) -> DurationStats:
    """Any database: the mean in SQL, then only the one or two rows around the percentile's
    position (ORDER BY span OFFSET k LIMIT 2) leave the database."""
    qs = qs.filter(**{f"{begin}__isnull": False, f"{finish}__isnull": False})
    span = F(finish) - F(begin)
    row = qs.aggregate(n=Count("pk"), mean=Avg(span, output_field=DurationField()))
    n = row["n"]
    if not n:
        return DurationStats(count=0, average=None, p90=None)
    position = fraction * (n - 1)
    low = math.floor(position)
    spans = [
        _as_timedelta(value)
        for value in qs.annotate(_span=span).order_by("_span").values_list("_span", flat=True)[low : low + 2]
    ]
    value = spans[0]
    if len(spans) > 1 and position > low:
        value = spans[0] + (spans[1] - spans[0]) * (position - low)
    return DurationStats(count=n, average=_as_timedelta(row["mean"]), p90=value)


def _as_timedelta(value) -> datetime.timedelta | None:
    if value is None or isinstance(value, datetime.timedelta):
        return value
    # SQLite hands back a temporal difference as microseconds.
    return datetime.timedelta(microseconds=float(value))


# --- the daily summary --------------------------------------------------------------------


@dataclass(frozen=True)
class DurationStats:
    count: int
    average: datetime.timedelta | None
    p90: datetime.timedelta | None


@dataclass(frozen=True)
class StatusTotal:
    currency: str
    status: str
    count: int
    amount_minor: int

    @property
    def status_label(self) -> str:
        return RefundStatus(self.status).label if self.status in RefundStatus.values else self.status


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    count: int
    amount_minor: int
    by_status: tuple[StatusTotal, ...]


@dataclass(frozen=True)
class FailureCount:
    provider: str
    error_code: str
    count: int


@dataclass(frozen=True)
class RefundSummary:
    start: datetime.date
    end: datetime.date
    time_zone: str
    since: datetime.datetime
    until: datetime.datetime
    requested_count: int
    currencies: tuple[CurrencyTotal, ...]
    approved_count: int  # approved by a person or automatically
    auto_approved_count: int
    rejected_count: int
    resolution: DurationStats
    approval: DurationStats
    failures: tuple[FailureCount, ...]
    refunded_and_disputed_count: int = 0
    refunded_and_disputed: tuple[DisputedRefund, ...] = ()  # the first DISPUTED_ROWS_SHOWN

    @property
    def decided_count(self) -> int:
        return self.approved_count + self.rejected_count

    @property
    def approval_rate(self) -> Decimal | None:
        return _ratio(self.approved_count, self.decided_count)

    @property
    def auto_approved_share(self) -> Decimal | None:
        return _ratio(self.auto_approved_count, self.approved_count)

    @property
    def failure_count(self) -> int:
        return sum(f.count for f in self.failures)

    @property
    def is_single_day(self) -> bool:
        return self.start == self.end


def _ratio(numerator: int, denominator: int) -> Decimal | None:
    if not denominator:
        return None
    return Decimal(numerator) / Decimal(denominator)


def _auto_approved_count(requested: QuerySet, *, low_id: int, high_id: int) -> int:
    """Approved refunds of `requested` with an automatic approval. A semi-join the planner can
    hash: the auto approvals of refunds with ids in the range's bounds (ids grow with
    created_at, so that is about the range) against the range, instead of one index probe
    per approved refund. Exact whatever the ids: the bounds only narrow the search."""
    auto = Approval.objects.filter(
        decision=Approval.Decision.AUTO_APPROVED, refund_id__gte=low_id, refund_id__lte=high_id
    ).values("refund_id")
    return requested.filter(approved_at__isnull=False, pk__in=auto).count()


def refund_summary(*, start: datetime.date, end: datetime.date, tz: str | None = None) -> RefundSummary:
    since, until = report_range(start=start, end=end, tz=tz)
    with report_queries():
        return _refund_summary(start=start, end=end, tz=tz, since=since, until=until)


def _refund_summary(*, start, end, tz, since, until) -> RefundSummary:
    requested = RefundRequest.objects.filter(created_at__gte=since, created_at__lt=until).order_by()
    counts = _status_counts(requested)
    durations = _durations(
        requested,
        [
            _Span("resolution", "created_at", "resolved_at", Q(status__in=FINAL_STATUSES)),
            _Span("approval", "created_at", "approved_at"),
        ],
    )
    failures = tuple(
        FailureCount(row["provider"], row["error_code"], row["n"])
        for row in requested.filter(status__in=FAILURE_STATUSES)
        .values("provider", "error_code")
        .annotate(n=Count("pk"))
        .order_by("-n", "provider", "error_code")
    )
    disputed_count, disputed_rows = refunds_disputed_after_success(since=since, until=until)
    return RefundSummary(
        refunded_and_disputed_count=disputed_count,
        refunded_and_disputed=disputed_rows,
        start=start,
        end=end,
        time_zone=str(business_zone(tz)),
        since=since,
        until=until,
        requested_count=sum(c.count for c in counts.currencies),
        currencies=counts.currencies,
        approved_count=counts.approved,
        auto_approved_count=counts.auto_approved,
        rejected_count=counts.rejected,
        resolution=durations["resolution"],
        approval=durations["approval"],
        failures=failures,
    )


@dataclass(frozen=True)
class _StatusCounts:
    currencies: tuple[CurrencyTotal, ...]
    approved: int
    auto_approved: int
    rejected: int


def _status_counts(requested: QuerySet) -> _StatusCounts:
    """One pass by (currency, status) also counts approvals and bounds the ids in the range;
    the durations take one more, and failures read the (status, created_at) index."""
    rows = requested.values("currency", "status").annotate(
        n=Count("pk"),
        amount=Sum("amount_minor"),
        approved=Count("pk", filter=Q(approved_at__isnull=False)),
        low_id=Min("pk"),
        high_id=Max("pk"),
    )
    by_currency: dict[str, list[StatusTotal]] = {}
    approved = rejected = 0
    low_id = high_id = None
    for row in rows:
        by_currency.setdefault(row["currency"], []).append(
            StatusTotal(row["currency"], row["status"], row["n"], int(row["amount"] or 0))
        )
        approved += row["approved"]
        if row["status"] == RefundStatus.REJECTED:
            rejected += row["n"]
        low_id = row["low_id"] if low_id is None else min(low_id, row["low_id"])
        high_id = row["high_id"] if high_id is None else max(high_id, row["high_id"])
    auto = _auto_approved_count(requested, low_id=low_id, high_id=high_id) if approved else 0
    status_order = {status: i for i, status in enumerate(RefundStatus.values)}
    currencies = tuple(
        CurrencyTotal(
            currency=currency,
            count=sum(t.count for t in totals),
            amount_minor=sum(t.amount_minor for t in totals),
            by_status=tuple(sorted(totals, key=lambda t: status_order.get(t.status, 99))),
        )
        for currency, totals in sorted(by_currency.items())
    )
    return _StatusCounts(currencies=currencies, approved=approved, auto_approved=auto, rejected=rejected)


# --- refund rate by product ---------------------------------------------------------------


@dataclass(frozen=True)
class ProductRate:
    product: str  # "" shown as "(no product)"
    currency: str
    refunded_count: int
    refunded_minor: int
    sold_count: int
    sold_minor: int
    sales_sources: tuple[str, ...]  # e.g. ("stripe",), ("import",), () when no sales known

    @property
    def rate_by_amount(self) -> Decimal | None:
        return _ratio(self.refunded_minor, self.sold_minor)

    @property
    def rate_by_count(self) -> Decimal | None:
        return _ratio(self.refunded_count, self.sold_count)

    @property
    def product_label(self) -> str:
        return self.product or NO_PRODUCT_LABEL


def product_refund_rates(
    *, start: datetime.date, end: datetime.date, tz: str | None = None, limit: int | None = None
) -> list[ProductRate]:
    """Sorted by rate_by_amount descending (None last)."""
    since, until = report_range(start=start, end=end, tz=tz)
    refunded = (
        RefundRequest.objects.filter(
            status=RefundStatus.SUCCEEDED, resolved_at__gte=since, resolved_at__lt=until
        )
        .order_by()
        .values("product", "currency")
        .annotate(n=Count("pk"), amount=Sum("amount_minor"))
    )
    sold = (
        Sale.objects.filter(sold_at__gte=since, sold_at__lt=until)
        .order_by()
        .values("product", "currency", "source")
        .annotate(n=Count("pk"), amount=Sum("amount_minor"))
    )
    with report_queries():
        refunded, sold = list(refunded), list(sold)
    rates = _product_rates(refunded, sold)
    rates.sort(
        key=lambda r: (
            r.rate_by_amount is None,
            -(r.rate_by_amount or 0),
            -r.refunded_minor,
            r.product,
            r.currency,
        )
    )
    return rates[:limit] if limit is not None else rates


def _product_rates(refunded: list[dict], sold: list[dict]) -> list[ProductRate]:
    """Refunded and sold rows joined on (product, currency)."""
    figures: dict[tuple[str, str], dict] = {}

    def entry(product: str, currency: str) -> dict:
        return figures.setdefault(
            (product, currency),
            {"refunded_count": 0, "refunded_minor": 0, "sold_count": 0, "sold_minor": 0, "sources": set()},
        )

    for row in refunded:
        item = entry(row["product"], row["currency"])
        item["refunded_count"] += row["n"]
        item["refunded_minor"] += int(row["amount"] or 0)
    for row in sold:
        item = entry(row["product"], row["currency"])
        item["sold_count"] += row["n"]
        item["sold_minor"] += int(row["amount"] or 0)
        item["sources"].add(row["source"])
    return [
        ProductRate(
            product=product,
            currency=currency,
            refunded_count=item["refunded_count"],
            refunded_minor=item["refunded_minor"],
            sold_count=item["sold_count"],
            sold_minor=item["sold_minor"],
            sales_sources=tuple(sorted(item["sources"])),
        )
        for (product, currency), item in figures.items()
    ]
