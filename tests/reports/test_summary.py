"""The daily summary and refund rate by product, against hand-computed fixtures, in a business
zone that is not UTC (America/New_York: the 10th of March 2026 runs 04:00Z to 04:00Z next day)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from approvals.models import Approval
from refunds.reports import calendar
from refunds.reports import summary as summaries
from refunds.models import RefundRequest, RefundStatus, Sale
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
DAY = datetime.date(2026, 3, 10)
SUMMARY = reverse("reports-summary")


def at(hour, minute=0, day=10):
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


H = datetime.timedelta(hours=1)
M = datetime.timedelta(minutes=1)


def refund(created, status, *, amount=1000, currency="USD", approved=None, resolved=None, auto=False,
           provider="stripe", error_code="", product=""):
    row = RefundFactory(status=status, amount_minor=amount, currency=currency, provider=provider,
                        error_code=error_code, product=product)
    RefundRequest.objects.filter(pk=row.pk).update(
        created_at=created,
        approved_at=created + approved if approved is not None else None,
        resolved_at=created + resolved if resolved is not None else None,
    )
    if auto:
        Approval.objects.create(refund=row, decision=Approval.Decision.AUTO_APPROVED)
    elif approved is not None:
        Approval.objects.create(refund=row, approver=row.requested_by, decision=Approval.Decision.APPROVED)
    return row


@pytest.fixture
def new_york(settings):
    settings.REPORTS_TIME_ZONE = "America/New_York"


@pytest.fixture
def day_of_refunds(new_york):
    S = RefundStatus
    refund(at(4, 30), S.SUCCEEDED, amount=1000, approved=10 * M, resolved=1 * H, auto=True)  # 00:30 local
    # 22:00 on the 9th, auto-approved, with an id among the day's: counted nowhere.
    refund(at(2), S.SUCCEEDED, amount=5555, approved=1 * M, resolved=1 * H, auto=True)
    refund(at(12), S.SUCCEEDED, amount=2500, approved=2 * H, resolved=3 * H)
    refund(at(15), S.REJECTED, amount=700, currency="EUR", resolved=30 * M)
    refund(at(20), S.FAILED, amount=400, approved=1 * M, resolved=2 * H, auto=True, error_code="card_declined")
    refund(at(3, 59, day=11), S.PENDING_APPROVAL, amount=300)  # 23:59 local on the 10th
    refund(at(18), S.NEEDS_ATTENTION, amount=600, approved=5 * M, provider="robokassa", error_code="timeout")
    refund(at(10), S.CANCELED, amount=100, resolved=4 * H)
    # Outside the local day, though inside the UTC one (and the other way round):
    refund(at(3, 59), S.SUCCEEDED, amount=9999, approved=1 * M, resolved=1 * H)  # 23:59 on the 9th
    refund(at(4, 0, day=11), S.REJECTED, amount=8888, resolved=1 * H)  # 00:00 on the 11th


def test_report_range_is_the_local_day_as_aware_datetimes(new_york):
    since, until = calendar.report_range(start=DAY, end=DAY)
    assert since == at(4) and until == at(4, day=11)  # EDT, UTC-4
    # The day daylight saving starts has 23 hours.
    since, until = calendar.report_range(start=datetime.date(2026, 3, 8), end=datetime.date(2026, 3, 8))
    assert until.astimezone(UTC) - since.astimezone(UTC) == 23 * H
    assert calendar.report_range(start=DAY, end=DAY, tz="UTC") == (at(0), at(0, day=11))


def test_counts_and_amounts_per_currency_and_status(day_of_refunds):
    summary = summaries.refund_summary(start=DAY, end=DAY)
    assert summary.requested_count == 7
    by = {(c.currency): c for c in summary.currencies}
    assert set(by) == {"USD", "EUR"}
    assert (by["USD"].count, by["USD"].amount_minor) == (6, 4900)
    assert (by["EUR"].count, by["EUR"].amount_minor) == (1, 700)
    assert {(t.status, t.count, t.amount_minor) for t in by["USD"].by_status} == {
        ("succeeded", 2, 3500),
        ("failed", 1, 400),
        ("pending_approval", 1, 300),
        ("needs_attention", 1, 600),
        ("canceled", 1, 100),
    }


def test_approval_rate_and_auto_approved_share(day_of_refunds):
    summary = summaries.refund_summary(start=DAY, end=DAY)
    assert (summary.approved_count, summary.rejected_count, summary.auto_approved_count) == (4, 1, 2)
    assert summary.approval_rate == Decimal("0.8")
    assert summary.auto_approved_share == Decimal("0.5")


def test_average_and_p90_times(day_of_refunds):
    summary = summaries.refund_summary(start=DAY, end=DAY)
    # Resolved: 30 min, 1 h, 2 h, 3 h, 4 h -> mean 2 h 06; p90 at position 3.6 -> 3 h 36.
    assert summary.resolution == summaries.DurationStats(count=5, average=2 * H + 6 * M, p90=3 * H + 36 * M)
    # Approved after 1, 5, 10, 120 min -> mean 34 min; p90 at position 2.7 -> 10 + 0.7 * 110 = 87 min.
    assert summary.approval == summaries.DurationStats(count=4, average=34 * M, p90=87 * M)


def test_the_portable_percentile_agrees_with_postgresql(day_of_refunds):
    if connection.vendor != "postgresql":
        pytest.skip("compares with PostgreSQL's percentile_cont")
    since, until = calendar.report_range(start=DAY, end=DAY)
    qs = RefundRequest.objects.filter(created_at__gte=since, created_at__lt=until)
    for begin, finish in (("created_at", "resolved_at"), ("created_at", "approved_at")):
        for fraction in (0.0, 0.5, 0.9, 1.0):
            native = summaries._duration_stats_postgresql(qs, begin=begin, finish=finish, fraction=fraction)
            portable = summaries._duration_stats_portable(qs, begin=begin, finish=finish, fraction=fraction)
            assert native == portable, (begin, finish, fraction)
    empty = summaries._duration_stats_portable(qs.none(), begin="created_at", finish="resolved_at", fraction=0.9)
    assert empty == summaries.DurationStats(count=0, average=None, p90=None)


def test_failures_by_provider_and_code(day_of_refunds):
    summary = summaries.refund_summary(start=DAY, end=DAY)
    assert {(f.provider, f.error_code, f.count) for f in summary.failures} == {
        ("stripe", "card_declined", 1),
        ("robokassa", "timeout", 1),
    }


def test_a_range_adds_its_days(day_of_refunds):
    summary = summaries.refund_summary(start=datetime.date(2026, 3, 9), end=datetime.date(2026, 3, 11))
    assert summary.requested_count == 10
    assert (summary.approved_count, summary.auto_approved_count) == (6, 3)


def test_an_empty_day_has_no_rates():
    summary = summaries.refund_summary(start=DAY, end=DAY)
    assert summary.requested_count == 0
    assert summary.approval_rate is None and summary.auto_approved_share is None
    assert summary.resolution.p90 is None


def sale(source, external_id, product, amount, sold_at, currency="USD"):
    return Sale.objects.create(source=source, external_id=external_id, product=product, amount_minor=amount,
                               currency=currency, sold_at=sold_at)


def test_refund_rate_by_product_with_sales_from_both_sources(new_york):
    S = RefundStatus
    sale("stripe", "pi_1", "pro", 10_000, at(13))
    sale("stripe", "pi_2", "pro", 10_000, at(3, 30, day=11))  # 23:30 local on the 10th
    sale("import", "INV-1", "pro", 5_000, at(4))  # midnight local
    sale("stripe", "pi_3", "pro", 7_000, at(4, 0, day=11))  # the 11th: not sold that day
    sale("import", "INV-2", "team", 20_000, at(16), currency="EUR")
    sale("stripe", "pi_4", "widget", 3_000, at(17))
    # Refunded = succeeded with resolved_at in the day, whenever requested.
    refund(at(15, day=9), S.SUCCEEDED, amount=1000, product="pro", resolved=14 * H)  # 05:00Z on the 10th
    refund(at(19), S.SUCCEEDED, amount=500, product="pro", resolved=1 * H)
    refund(at(19), S.FAILED, amount=800, product="pro", resolved=1 * H)
    refund(at(1), S.SUCCEEDED, amount=2000, product="pro", resolved=2 * H)  # 03:00Z: the 9th locally
    refund(at(12), S.SUCCEEDED, amount=5000, currency="EUR", product="team", resolved=2 * H)
    refund(at(12), S.SUCCEEDED, amount=300, product="ghost", resolved=2 * H)

    rates = summaries.product_refund_rates(start=DAY, end=DAY)
    assert [(r.product, r.currency) for r in rates] == [
        ("team", "EUR"), ("pro", "USD"), ("widget", "USD"), ("ghost", "USD"),
    ]
    team, pro, widget, ghost = rates
    assert pro == summaries.ProductRate("pro", "USD", 2, 1500, 3, 25_000, ("import", "stripe"))
    assert pro.rate_by_amount == Decimal("0.06") and pro.rate_by_count == Decimal(2) / Decimal(3)
    assert team.rate_by_amount == Decimal("0.25") and team.sales_sources == ("import",)
    assert widget.rate_by_amount == 0 and widget.sales_sources == ("stripe",)
    assert ghost.rate_by_amount is None and ghost.sales_sources == () and ghost.sold_count == 0
    assert summaries.product_refund_rates(start=DAY, end=DAY, limit=2) == rates[:2]


# --- the page ---------------------------------------------------------------------------


def test_summary_page_needs_a_login_and_view_reports(client, agent):
    response = client.get(SUMMARY)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    client.force_login(agent)
    assert client.get(SUMMARY).status_code == 403


def test_summary_page_shows_the_figures_a_user_checks(client, accountant, day_of_refunds):
    client.force_login(accountant)
    response = client.get(SUMMARY, {"start": "2026-03-10", "end": "2026-03-10"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Tuesday 10 March 2026" in html
    assert '<dd data-testid="requested-count">7</dd>' in html
    assert "80.0%" in html  # approval rate
    assert "50.0%" in html  # auto-approved share
    assert "49.00 USD" in html and "7.00 EUR" in html  # USD and EUR totals
    assert "2 h 06 min" in html and "3 h 36 min" in html  # resolution average and p90
    assert "34 min 00 s" in html and "1 h 27 min" in html  # approval average and p90
    assert "card_declined" in html and "timeout" in html
    assert "How these are counted" in html and "America/New_York" in html


def test_summary_page_defaults_to_yesterday(client, accountant, new_york):
    client.force_login(accountant)
    response = client.get(SUMMARY)
    assert response.status_code == 200
    assert response.context["summary"].start == calendar.business_yesterday()
    assert response.context["summary"].end == calendar.business_yesterday()


@pytest.mark.parametrize(
    "start,end,message",
    [
        ("2026-03-10", "2026-03-01", "The end date is before the start date."),
        ("2025-01-01", "2026-03-01", "The range covers 425 days; pick at most 366 days."),
        ("2026-02-30", "2026-03-01", "Enter a valid date."),
    ],
)
def test_summary_page_refuses_bad_ranges_clearly(client, accountant, start, end, message):
    client.force_login(accountant)
    response = client.get(SUMMARY, {"start": start, "end": end})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert "summary" not in response.context or response.context.get("summary") is None
