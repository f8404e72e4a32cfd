"""The reports dashboard: its selectors against hand-computed figures (days in a non-UTC
business zone, time to resolution, the approval queue's age), who may see it, and its
tables (the page without JavaScript) holding the numbers."""

from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.db.models.functions import TruncDate
from django.urls import reverse

from refunds.models import FINAL_STATUSES, RefundRequest, RefundStatus, Sale
from refunds.reports.calendar import business_zone, report_range
from refunds.reports.dashboard import (
    _resolution_in_python,
    dashboard_queue,
    dashboard_resolution,
    dashboard_volume,
    percentile_cont,
)
from tests import factories

pytestmark = pytest.mark.django_db
NEW_YORK = "America/New_York"  # UTC-5 in mid November


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def refund(created_at, status=RefundStatus.SUCCEEDED, resolved_at=None, amount=1_000, currency="USD", **kw):
    row = factories.RefundFactory(status=status, amount_minor=amount, currency=currency, **kw)
    # created_at is stamped when the row is made: set the moment afterwards, as the data would have it.
    RefundRequest.objects.filter(pk=row.pk).update(created_at=created_at, resolved_at=resolved_at)
    return row


@pytest.fixture
def week_in_new_york(settings):
    """Refunds around the edges of 10–12 Nov 2026 in New York (UTC-5)."""
    settings.REPORTS_TIME_ZONE = NEW_YORK
    refund(utc(2026, 11, 10, 4, 59), amount=111)  # 9 Nov 23:59 in New York: outside
    refund(utc(2026, 11, 11, 3, 0), amount=1_000)  # 10 Nov 22:00
    refund(utc(2026, 11, 11, 4, 59), RefundStatus.FAILED, amount=2_500)  # 10 Nov 23:59
    refund(utc(2026, 11, 11, 5, 30), RefundStatus.PENDING_APPROVAL, amount=4_000)  # 11 Nov 00:30
    refund(utc(2026, 11, 13, 4, 0), amount=700, currency="EUR")  # 12 Nov 23:00
    refund(utc(2026, 11, 13, 5, 0), amount=999)  # 13 Nov 00:00: outside


def by_status(volume, day: date) -> dict[str, int]:
    [row] = [d for d in volume.days if d.day == day]
    return {status: value for status, value in zip(volume.statuses, row.values) if value}


def test_volume_counts_each_day_in_the_business_zone(week_in_new_york):
    volume = dashboard_volume(start=date(2026, 11, 10), end=date(2026, 11, 12))

    assert [d.day for d in volume.days] == [date(2026, 11, 10), date(2026, 11, 11), date(2026, 11, 12)]
    assert by_status(volume, date(2026, 11, 10)) == {"succeeded": 1, "failed": 1}
    assert by_status(volume, date(2026, 11, 11)) == {"pending_approval": 1}
    assert by_status(volume, date(2026, 11, 12)) == {"succeeded": 1}
    assert volume.requested_count == 4
    assert volume.requested_minor == {"EUR": 700, "USD": 7_500}
    assert volume.succeeded_minor == {"EUR": 700, "USD": 1_000}
    assert volume.currencies == ("EUR", "USD")


def test_volume_in_one_currency_sums_its_amounts(week_in_new_york):
    volume = dashboard_volume(start=date(2026, 11, 10), end=date(2026, 11, 12), measure="USD")

    assert by_status(volume, date(2026, 11, 10)) == {"succeeded": 1_000, "failed": 2_500}
    assert by_status(volume, date(2026, 11, 11)) == {"pending_approval": 4_000}
    assert by_status(volume, date(2026, 11, 12)) == {}  # the EUR refund is not in USD
    assert volume.total == 7_500


def test_volume_day_follows_the_zone_asked_for(week_in_new_york):
    # In UTC the 9 Nov 23:59 (New York) refund is on 10 Nov, and the 22:00 one on 11 Nov.
    volume = dashboard_volume(start=date(2026, 11, 10), end=date(2026, 11, 10), tz="UTC")
    assert by_status(volume, date(2026, 11, 10)) == {"succeeded": 1}


@pytest.fixture
def resolutions(settings):
    settings.REPORTS_TIME_ZONE = NEW_YORK
    monday = utc(2026, 11, 9, 15, 0)  # 10:00 in New York
    for hours, status in [(2, "succeeded"), (4, "failed"), (10, "rejected"), (20, "canceled")]:
        refund(monday, status, resolved_at=monday + timedelta(hours=hours))
    refund(monday, RefundStatus.PROCESSING)  # not resolved: not counted
    tuesday = utc(2026, 11, 10, 15, 0)
    refund(tuesday, resolved_at=tuesday + timedelta(hours=1))
    refund(utc(2026, 11, 12, 15, 0), resolved_at=utc(2026, 11, 12, 16, 0))  # outside the range


def test_time_to_resolution_per_day_and_overall(resolutions):
    resolution = dashboard_resolution(start=date(2026, 11, 9), end=date(2026, 11, 11))
    hours = {
        d.day: (d.resolved, _h(d.average_seconds), _h(d.p90_seconds)) for d in resolution.days
    }

    # Monday: 2, 4, 10, 20 h: average 9; p90 at position 0.9 × 3 = 2.7: 10 + 0.7 × 10 = 17.
    assert hours[date(2026, 11, 9)] == (4, 9.0, 17.0)
    assert hours[date(2026, 11, 10)] == (1, 1.0, 1.0)
    assert hours[date(2026, 11, 11)] == (0, None, None)
    # All five: 1, 2, 4, 10, 20 h: median 4; p90 at position 3.6: 10 + 0.6 × 10 = 16.
    assert resolution.resolved == 5
    assert _h(resolution.median_seconds) == 4.0
    assert _h(resolution.p90_seconds) == 16.0


def test_the_sqlite_fallback_agrees_with_postgresql(resolutions):
    if connection.vendor != "postgresql":
        # On SQLite dashboard_resolution is the fallback itself; the hand-computed figures in
        # test_time_to_resolution_per_day_and_overall are the fallback's check there.
        pytest.skip("compares the Python fallback with PostgreSQL's percentile_cont: needs PostgreSQL")
    low, high = report_range(start=date(2026, 11, 9), end=date(2026, 11, 11))
    rows = RefundRequest.objects.filter(
        created_at__gte=low, created_at__lt=high, status__in=FINAL_STATUSES, resolved_at__isnull=False
    ).annotate(day=TruncDate("created_at", tzinfo=business_zone()))
    per_day, overall = _resolution_in_python(rows)
    in_sql = dashboard_resolution(start=date(2026, 11, 9), end=date(2026, 11, 11))

    assert (overall["n"], overall["median"], overall["p90"]) == (
        in_sql.resolved, pytest.approx(in_sql.median_seconds), pytest.approx(in_sql.p90_seconds)
    )
    for day in in_sql.days:
        if day.resolved:
            row = per_day[day.day]
            assert (row["n"], row["avg"], row["p90"]) == (
                day.resolved, pytest.approx(day.average_seconds), pytest.approx(day.p90_seconds)
            )


def _h(seconds):
    return None if seconds is None else round(seconds / 3600, 6)


def test_percentile_fallback_interpolates_as_postgresql():
    assert percentile_cont([20, 2, 10, 4], 0.9) == pytest.approx(17)
    assert percentile_cont([1, 2, 4, 10, 20], 0.5) == 4
    assert percentile_cont([5], 0.9) == 5
    assert percentile_cont([], 0.9) is None


def test_queue_age_buckets_and_oldest():
    now = utc(2026, 11, 20, 12, 0)
    for age in [timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2), timedelta(hours=5),
                timedelta(hours=30), timedelta(days=4)]:
        refund(now - age, RefundStatus.PENDING_APPROVAL, merchant_refund_id=f"wait-{int(age.total_seconds())}")
    oldest = refund(now - timedelta(days=10), RefundStatus.PENDING_APPROVAL, amount=12_345, currency="EUR")
    refund(now - timedelta(days=30), RefundStatus.APPROVED)  # decided: not in the queue

    queue = dashboard_queue(now=now)

    assert [(b.label, b.count) for b in queue.buckets] == [
        ("under 1 hour", 1),
        ("1–4 hours", 2),  # exactly one hour old counts as 1–4 hours
        ("4–24 hours", 1),
        ("1–3 days", 1),
        ("over 3 days", 2),
    ]
    assert queue.pending == 7
    assert queue.oldest.merchant_refund_id == oldest.merchant_refund_id
    assert queue.oldest.age == timedelta(days=10)
    assert (queue.oldest.amount_minor, queue.oldest.currency) == (12_345, "EUR")


def test_empty_queue_has_no_oldest():
    queue = dashboard_queue()
    assert queue.pending == 0 and queue.oldest is None


# --- the page -----------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Tables by data-testid -> rows -> cell texts (what a reader without JavaScript sees)."""

    def __init__(self):
        super().__init__()
        self.tables, self.current, self.row, self.cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("data-testid"):
            self.current = self.tables.setdefault(attrs["data-testid"], [])
        elif tag == "tr" and self.current is not None:
            self.row = []
            self.current.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.current = self.row = None
        elif tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(response) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(response.content.decode())
    return parser.tables


def as_dicts(rows):
    header, *body = rows
    return [dict(zip(header, row)) for row in body]


def test_only_report_readers_see_the_dashboard(client, agent, accountant, manager):
    url = reverse("reports-dashboard")
    assert url == "/reports/"
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    client.force_login(agent)
    assert client.get(url).status_code == 403
    for user in (accountant, manager):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200
        assert b"Reports dashboard" in response.content


def test_tables_hold_the_numbers_without_javascript(client, accountant, week_in_new_york):
    client.force_login(accountant)
    response = client.get("/reports/", {"start": "2026-11-10", "end": "2026-11-12"})
    assert response.status_code == 200
    page = tables(response)

    volume = {row["Day"]: row for row in as_dicts(page["table-volume"])}
    assert list(volume) == ["Tue 10 Nov", "Wed 11 Nov", "Thu 12 Nov", "Total"]
    assert (volume["Tue 10 Nov"]["Succeeded"], volume["Tue 10 Nov"]["Failed"], volume["Tue 10 Nov"]["Total"]) == (
        "1", "1", "2"
    )
    assert volume["Wed 11 Nov"]["Pending approval"] == "1"
    assert volume["Total"]["Total"] == "4"
    assert [row["Refunds"] for row in as_dicts(page["table-queue"])] == ["0", "0", "0", "0", "1", "1"]
    assert len(as_dicts(page["table-resolution"])) == 3
    html = response.content.decode()
    assert 'data-testid="tile-requested">4<' in html
    assert "10.00 USD" in html and "7.00 EUR" in html  # refunded (succeeded) per currency
    # The tables are open until JavaScript has drawn the charts.
    assert html.count('<details class="chart-data" open>') == 4
    # Chart.js is served from here (no CDN), and the links to the other report pages are there.
    assert "/static/refunds/vendor/chartjs/chart.umd.min.js" in html
    for link in ("/reports/summary/", "/reports/exports/", "/reports/sales/"):
        assert f'href="{link}"' in html


def test_volume_in_a_currency_shows_amounts(client, accountant, week_in_new_york):
    client.force_login(accountant)
    response = client.get("/reports/", {"start": "2026-11-10", "end": "2026-11-12", "measure": "usd"})
    volume = {row["Day"]: row for row in as_dicts(tables(response)["table-volume"])}
    assert volume["Tue 10 Nov"]["Failed"] == "25.00 USD"
    assert volume["Total"]["Total"] == "75.00 USD"
    assert '<option value="USD" selected>Amount in USD</option>' in response.content.decode()


def test_top_products_by_refund_rate(client, accountant, settings):
    settings.REPORTS_TIME_ZONE = NEW_YORK
    at = utc(2026, 11, 10, 15, 0)
    for n, (product, amount) in enumerate([("Desk", 10_000), ("Desk", 10_000), ("Chair", 4_000)]):
        Sale.objects.create(source="import", external_id=f"s{n}", product=product, amount_minor=amount,
                            currency="USD", sold_at=at)
    refund(at, resolved_at=at, amount=5_000, product="Desk")
    refund(at, resolved_at=at, amount=3_000, product="Chair")

    client.force_login(accountant)
    response = client.get("/reports/", {"start": "2026-11-10", "end": "2026-11-10"})
    rows = as_dicts(tables(response)["table-products"])
    assert [(r["Product"], r["Rate (amount)"], r["Rate (count)"]) for r in rows] == [
        ("Chair USD", "75.0 %", "100.0 %"),
        ("Desk USD", "25.0 %", "50.0 %"),
    ]
    assert response.context["charts"]["products"] == {"labels": ["Chair (USD)", "Desk (USD)"], "data": [75.0, 25.0]}


def test_range_longer_than_366_days_is_refused(client, accountant):
    client.force_login(accountant)
    response = client.get("/reports/", {"start": "2025-01-01", "end": "2026-01-02"})
    assert response.status_code == 400
    assert "Choose at most 366 days; 2025-01-01 to 2026-01-02 is 367 days." in response.content.decode()
    assert "table-volume" not in response.content.decode()

    response = client.get("/reports/", {"start": "2025-01-01", "end": "2026-01-01"})
    assert response.status_code == 200


def test_end_before_start_and_bad_dates_are_form_errors(client, accountant):
    client.force_login(accountant)
    response = client.get("/reports/", {"start": "2026-11-12", "end": "2026-11-10"})
    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()
    response = client.get("/reports/", {"start": "yesterday", "end": "2026-11-10"})
    assert response.status_code == 400
    assert "Enter a valid date." in response.content.decode()


def test_default_range_is_the_last_30_days_in_the_business_zone(client, accountant, settings):
    settings.REPORTS_TIME_ZONE = NEW_YORK
    client.force_login(accountant)
    response = client.get("/reports/")
    dashboard = response.context["dashboard"]
    assert (dashboard.end - dashboard.start).days == 29
    assert dashboard.tz == NEW_YORK
    assert len(response.context["volume_rows"]) == 30


def test_admin_index_shows_the_panel_to_report_readers_only(client, accountant, agent):
    refund(datetime.now(UTC) - timedelta(hours=2), RefundStatus.PENDING_APPROVAL)

    client.force_login(accountant)
    response = client.get("/admin/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="dashboard-panel"' in html and ">Open dashboard</a>" in html
    assert 'data-testid="tile-pending">1<' in html
    assert [row[-1] for row in tables(response)["table-queue"]] == ["0", "1", "0", "0", "0"]
    assert "Refund requests" in html  # the normal app list is still there

    client.force_login(agent)
    html = client.get("/admin/").content.decode()
    assert "dashboard-panel" not in html and "chart.umd.min.js" not in html
    assert "Refund requests" in html
