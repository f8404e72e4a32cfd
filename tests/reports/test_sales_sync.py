"""Sales synced from Stripe: the SDK over HTTP against the sandbox, paging, product from the
configured metadata key, idempotent, through the shared rate limiter."""

import datetime

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from refunds import tasks
from refunds.reports import calendar, sales
from refunds.models import Sale
from refunds.providers.base import TransientProviderError
from refunds.providers.stripe import StripeProvider

pytestmark = pytest.mark.django_db

SYNC = reverse("reports-sales-sync")


@pytest.fixture
def around_today():
    today = calendar.business_today()
    # A day either side: a payment made at 23:59:59 is still found after midnight.
    return today - datetime.timedelta(days=1), today + datetime.timedelta(days=1)


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(StripeProvider, "list_page_size", 2)


def test_sync_upserts_the_days_succeeded_payments(stripe_sandbox_clean, settings, small_pages, around_today):
    sandbox = stripe_sandbox_clean
    settings.REPORTS_PRODUCT_METADATA_KEY = "sku"
    before = timezone.now().replace(microsecond=0)
    paid = [
        sandbox.create_payment(1000 + i, currency="eur", metadata={"sku": f"plan-{i % 2}", "product": "ignored"})
        for i in range(5)
    ]
    unpaid = sandbox.client().v1.payment_intents.create(params={"amount": 777, "currency": "usd"}).id
    start, end = around_today

    first = sales.sales_sync(start=start, end=end)

    rows = {s.external_id: s for s in Sale.objects.filter(source="stripe")}
    assert set(paid) <= set(rows) and unpaid not in rows
    for i, pi in enumerate(paid):
        assert (rows[pi].product, rows[pi].amount_minor, rows[pi].currency) == (f"plan-{i % 2}", 1000 + i, "EUR")
        assert before <= rows[pi].sold_at <= timezone.now()
    assert first.created == len(rows) and first.updated == 0

    again = sales.sales_sync(start=start, end=end)
    assert Sale.objects.filter(source="stripe").count() == len(rows)
    assert (again.created, again.updated) == (0, len(rows))


def test_every_page_request_books_a_rate_limit_slot(stripe_sandbox_clean, small_pages, around_today, monkeypatch):
    sandbox = stripe_sandbox_clean
    for _ in range(3):
        sandbox.create_payment(500, metadata={"product": "x"})
    booked = []
    real = sales.provider_slot_acquire
    monkeypatch.setattr(sales, "provider_slot_acquire", lambda p, **kw: booked.append(p) or real(p, **kw))
    sandbox.reset_stats()
    sales.sales_sync(start=around_today[0], end=around_today[1])
    listed = sum(sandbox.stats()["requests"]["GET /v1/payment_intents"].values())
    assert listed >= 2  # three payments at two a page
    assert booked == ["stripe"] * listed


def test_a_day_without_payments_syncs_nothing(stripe_sandbox_clean):
    stripe_sandbox_clean.create_payment(500, metadata={"product": "x"})
    result = sales.sales_sync(start=datetime.date(2020, 1, 1), end=datetime.date(2020, 1, 31))
    assert (result.created, result.updated) == (0, 0)
    assert not Sale.objects.exists()


def test_a_stripe_outage_raises_transient_and_writes_nothing(stripe_sandbox_clean, around_today):
    stripe_sandbox_clean.create_payment(500, metadata={"product": "x"})
    stripe_sandbox_clean.set_faults(503, count=None, path_prefix="/v1/payment_intents", methods=["GET"])
    with pytest.raises(TransientProviderError):
        sales.sales_sync(start=around_today[0], end=around_today[1])
    assert not Sale.objects.exists()


def test_the_task_and_the_command_sync_too(stripe_sandbox_clean, around_today):
    pi = stripe_sandbox_clean.create_payment(4200, metadata={"product": "lamp"})
    start, end = (d.isoformat() for d in around_today)
    assert tasks.sales_sync_task.apply(kwargs={"start": start, "end": end}).get()["created"] >= 1
    assert Sale.objects.get(source="stripe", external_id=pi).product == "lamp"
    call_command("syncsales", "--start", start, "--end", end)
    assert Sale.objects.filter(source="stripe", external_id=pi).count() == 1


def test_sync_button_for_accountants(client, accountant, stripe_sandbox_clean, around_today):
    pi = stripe_sandbox_clean.create_payment(9900, metadata={"product": "chair"})
    client.force_login(accountant)
    page = client.get(reverse("reports-sales"))
    assert "Sync from Stripe" in page.content.decode()
    start, end = (d.isoformat() for d in around_today)
    response = client.post(SYNC, {"start": start, "end": end}, follow=True)
    html = response.content.decode()
    assert "Stripe payments from" in html and "new" in html
    assert Sale.objects.get(external_id=pi).amount_minor == 9900
    assert "99.00 USD" in html and "chair" in html


def test_sync_button_refuses_long_ranges_and_other_roles(client, accountant, manager, stripe_sandbox_clean):
    client.force_login(accountant)
    response = client.post(SYNC, {"start": "2026-01-01", "end": "2026-03-01"}, follow=True)
    assert "Sync not started: The range covers 60 days; pick at most 31 days." in response.content.decode()
    client.force_login(manager)
    assert "Sync from Stripe" not in client.get(reverse("reports-sales")).content.decode()
    assert client.post(SYNC, {"start": "2026-01-01", "end": "2026-01-01"}).status_code == 403


def test_sync_button_says_so_when_stripe_is_down(client, accountant, stripe_sandbox_clean, around_today):
    stripe_sandbox_clean.set_faults(503, count=None, path_prefix="/v1/payment_intents", methods=["GET"])
    client.force_login(accountant)
    start, end = (d.isoformat() for d in around_today)
    response = client.post(SYNC, {"start": start, "end": end}, follow=True)
    assert response.status_code == 200
    assert "Stripe could not be read" in response.content.decode()
    assert not Sale.objects.exists()
