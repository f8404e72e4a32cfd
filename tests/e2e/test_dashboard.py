"""The reports dashboard in headless Chromium, as an accountant: with JavaScript the four
charts are drawn (Chart.js, served from our static files) and the page is screenshotted to
test-artifacts/screenshots/dashboard.png; without JavaScript the tables carry the numbers."""

import random
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from refunds.models import Payment, RefundRequest, RefundStatus, Sale
from tests import factories
from tests.fixtures.browser import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PRODUCTS = ["Standing desk", "Office chair", "Monitor arm", "Desk lamp", "Cable tray", "Footrest"]
FINAL = [RefundStatus.SUCCEEDED] * 6 + [RefundStatus.FAILED, RefundStatus.REJECTED, RefundStatus.CANCELED]
PENDING_AGES_HOURS = [0.2, 0.5, 2, 3, 6, 12, 20, 30, 50, 80, 100]


@pytest.fixture
def month_of_refunds(settings):
    """Thirty days of refunds, sales and a queue, made the way the data would be (bulk)."""
    settings.REPORTS_TIME_ZONE = "Europe/Berlin"
    agent = factories.agent(username="agent")
    rng = random.Random(7)
    now = timezone.now()
    refunds, sales = [], []
    for n in range(240):
        created = now - timedelta(days=rng.uniform(0.5, 28.5))
        status = rng.choice(FINAL) if n % 12 else RefundStatus.PROCESSING
        resolved = created + timedelta(hours=rng.lognormvariate(1.6, 0.8)) if status in FINAL else None
        refunds.append((created, status, resolved, rng.choice(PRODUCTS), rng.randrange(500, 40_000),
                        "EUR" if n % 4 == 0 else "USD"))
    for hours in PENDING_AGES_HOURS:
        refunds.append((now - timedelta(hours=hours), RefundStatus.PENDING_APPROVAL, None, "Office chair", 12_000, "USD"))
    payments = Payment.objects.bulk_create(
        Payment(provider="stripe", connector_transaction_id=f"pi_dash{n}", amount_minor=50_000, currency=r[5])
        for n, r in enumerate(refunds)
    )
    RefundRequest.objects.bulk_create(
        RefundRequest(
            merchant_refund_id=f"dash-{n:04d}", provider=payment.provider,
            connector_transaction_id=payment.connector_transaction_id,
            payment=payment, amount_minor=amount, currency=currency, product=product, status=status,
            requested_by=agent, request_fingerprint="0" * 64, idempotency_key=f"dash-{n}", payment_verified=True,
            resolved_at=resolved,
        )
        for n, ((_, status, resolved, product, amount, currency), payment) in enumerate(zip(refunds, payments))
    )
    for n, (created, *_rest) in enumerate(refunds):  # created_at is stamped when made: set it afterwards
        RefundRequest.objects.filter(merchant_refund_id=f"dash-{n:04d}").update(created_at=created)
    for n in range(900):
        sales.append(Sale(source="import", external_id=f"sale-{n}", product=PRODUCTS[n % len(PRODUCTS)],
                          amount_minor=rng.randrange(5_000, 60_000), currency="USD" if n % 4 else "EUR",
                          sold_at=now - timedelta(days=rng.uniform(0.5, 28.5))))
    Sale.objects.bulk_create(sales)
    return len(PENDING_AGES_HOURS)


@pytest.fixture
def accountant_page(login):
    """accountant_page(javascript=True) -> a page logged in as an accountant, on /reports/."""
    user = factories.accountant(username="accountant")

    def make(javascript=True, url="/reports/"):
        return login(user, url, javascript=javascript, height=900)

    return make


DRAWN_PIXELS = """canvas => {
  const ctx = canvas.getContext("2d");
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
  return drawn;
}"""


def test_charts_are_drawn_and_screenshotted(accountant_page, month_of_refunds):
    page = accountant_page()
    page.wait_for_function("window.refundDashboardCharts && Object.keys(window.refundDashboardCharts).length === 4")

    kinds = page.evaluate("Object.keys(window.refundDashboardCharts).sort()")
    assert kinds == ["products", "queue", "resolution", "volume"]
    for kind in kinds:
        canvas = page.locator(f'canvas[data-chart="{kind}"]')
        assert canvas.evaluate("c => Chart.getChart(c) !== undefined")
        assert canvas.evaluate(DRAWN_PIXELS) > 1_000, f"the {kind} chart drew nothing"
    # What the charts show is what the tables say.
    queue = page.evaluate("window.refundDashboardCharts.queue.data.datasets[0].data")
    assert queue == [2, 2, 3, 2, 2] and sum(queue) == month_of_refunds
    assert page.get_by_test_id("tile-pending").inner_text() == str(month_of_refunds)
    volume = page.evaluate("window.refundDashboardCharts.volume.data.datasets.map(d => d.data.reduce((a, b) => a + b, 0))")
    assert sum(volume) == int(page.get_by_test_id("tile-requested").inner_text()) == 251

    # With the charts drawn, the tables fold away; one click opens them.
    assert not page.get_by_test_id("table-queue").is_visible()
    page.get_by_text("Table: approval queue by age").click()
    assert page.get_by_test_id("table-queue").is_visible()
    page.get_by_text("Table: approval queue by age").click()

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "dashboard.png", full_page=True)
    assert (SHOTS / "dashboard.png").stat().st_size > 20_000


def test_without_javascript_the_tables_show_the_numbers(accountant_page, month_of_refunds):
    page = accountant_page(javascript=False)

    queue = page.get_by_test_id("table-queue")
    assert queue.is_visible()
    rows = [r.split("\t") for r in queue.locator("tbody tr").all_inner_texts()]
    assert rows == [["under 1 hour", "2"], ["1–4 hours", "2"], ["4–24 hours", "3"], ["1–3 days", "2"],
                    ["over 3 days", "2"]]
    volume = page.get_by_test_id("table-volume")
    assert volume.is_visible()
    assert volume.locator("tbody tr").count() == 30
    assert volume.locator("tfoot td").last.inner_text() == "251"
    assert page.get_by_test_id("table-resolution").is_visible()
    products = page.get_by_test_id("table-products")
    assert products.is_visible() and products.locator("tbody tr").count() == 10
    assert re.search(r"\d+\.\d %", products.locator("tbody tr").first.inner_text())
    page.screenshot(path=SHOTS / "dashboard-no-javascript.png", full_page=True)


def test_range_picker_and_admin_panel(accountant_page, month_of_refunds):
    page = accountant_page()
    page.get_by_label("From", exact=True).fill("2024-01-01")
    page.get_by_label("To", exact=True).fill("2025-06-30")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("alert").filter(has_text="Choose at most 366 days").wait_for()

    admin = accountant_page(url="/admin/")
    admin.wait_for_function("window.refundDashboardCharts && Object.keys(window.refundDashboardCharts).length === 2")
    panel = admin.get_by_test_id("dashboard-panel")
    assert panel.get_by_test_id("tile-pending").inner_text() == str(month_of_refunds)
    assert admin.locator('canvas[data-chart="volume"]').evaluate(DRAWN_PIXELS) > 1_000
    admin.screenshot(path=SHOTS / "admin-dashboard.png", full_page=True)
    panel.get_by_role("link", name="Open dashboard").click()
    admin.wait_for_url(re.compile(r"/reports/$"))
