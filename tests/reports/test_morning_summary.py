"""The morning Slack summary: real HTTP posts to a local Slack stub, once per day however often
(and however concurrently) the beat runs it, and not before the configured local time."""

import datetime
import threading

import pytest
from django.db import connection
from django.utils import timezone

from refundoffice.celery import app
from refunds import tasks
from refunds.models import RefundRequest, RefundStatus, SummaryDelivery
from refunds.reports import morning as morning_summary
from tests.factories import RefundFactory

UTC = datetime.UTC
YESTERDAY = datetime.date(2026, 3, 10)
# 08:00 in New York on the 11th (EDT, UTC-4).
SEND_TIME = datetime.datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


@pytest.fixture
def morning(settings, slack):
    settings.REPORTS_TIME_ZONE = "America/New_York"
    settings.REPORTS_SUMMARY_SEND_AT = "08:00"
    settings.SITE_URL = "https://refunds.example.com"
    return slack


def refund_on(created, status, amount, product="pro", resolved=None):
    row = RefundFactory(status=status, amount_minor=amount, product=product)
    RefundRequest.objects.filter(pk=row.pk).update(created_at=created, resolved_at=resolved)
    return row


@pytest.mark.django_db
def test_not_sent_before_the_configured_local_time(morning):
    assert morning_summary.summary_send_due(now=SEND_TIME - datetime.timedelta(minutes=1)) is None
    assert not SummaryDelivery.objects.exists() and morning.messages == []


@pytest.mark.django_db
def test_sent_once_the_time_has_passed_with_yesterdays_figures(morning):
    created = datetime.datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    refund_on(created, RefundStatus.SUCCEEDED, 2500, resolved=created + datetime.timedelta(hours=3))
    refund_on(created, RefundStatus.PENDING_APPROVAL, 1000)
    refund_on(datetime.datetime(2026, 3, 11, 4, 30, tzinfo=UTC), RefundStatus.PENDING_APPROVAL, 999)  # today

    delivery = morning_summary.summary_send_due(now=SEND_TIME)

    assert delivery.day == YESTERDAY and delivery.sent_at is not None and delivery.error == ""
    [message] = morning.messages
    assert message["text"].startswith("Refund summary for Tue 10 Mar 2026: 2 requested")
    body = str(message["blocks"])
    assert "*35.00 USD* in 2 refunds: 1 pending approval, 1 succeeded" in body
    assert "avg *3 h 00 min*" in body
    assert "pro (USD)" in body
    assert "https://refunds.example.com/reports/summary/?start=2026-03-10&end=2026-03-10" in body
    assert "9.99" not in body


@pytest.mark.django_db
def test_the_task_run_twice_sends_one_message(morning, monkeypatch):
    # The task asks the clock itself (no `now` passed): freeze it just after the send time, so
    # both runs see the same day however close to midnight the suite runs.
    frozen = SEND_TIME + datetime.timedelta(minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: frozen)

    tasks.summary_send_due_task.apply().get()
    tasks.summary_send_due_task.apply().get()

    assert len(morning.messages) == 1
    delivery = SummaryDelivery.objects.get()
    assert delivery.day == YESTERDAY and delivery.sent_at == frozen


@pytest.mark.django_db(transaction=True)
def test_concurrent_beats_send_one_message(morning):
    barrier = threading.Barrier(4)
    outcomes = []

    def beat():
        try:
            barrier.wait()
            outcomes.append(morning_summary.summary_send_due(now=SEND_TIME))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(morning.messages) == 1
    assert sum(outcome is not None for outcome in outcomes) == 1
    assert SummaryDelivery.objects.count() == 1


@pytest.mark.django_db
def test_a_failed_send_is_retried_on_a_later_tick_and_never_repeated(morning):
    morning.status = 500
    failed = morning_summary.summary_send_due(now=SEND_TIME)
    assert failed.sent_at is None and "HTTPError" in failed.error
    assert morning.messages == []
    assert SummaryDelivery.objects.get(day=YESTERDAY).error

    morning.status = 200
    sent = morning_summary.summary_send_due(now=SEND_TIME + datetime.timedelta(minutes=2))
    assert sent.sent_at is not None and sent.error == ""
    assert morning_summary.summary_send_due(now=SEND_TIME + datetime.timedelta(minutes=4)) is None
    assert morning_summary.summary_send_due(now=SEND_TIME + datetime.timedelta(hours=5)) is None
    assert len(morning.messages) == 1


@pytest.mark.django_db
def test_a_claim_whose_sender_died_is_taken_over_only_when_stale(morning):
    SummaryDelivery.objects.create(day=YESTERDAY)
    SummaryDelivery.objects.filter(day=YESTERDAY).update(claimed_at=SEND_TIME - datetime.timedelta(minutes=1))
    assert morning_summary.summary_send_due(now=SEND_TIME) is None  # another sender may be posting now
    assert morning.messages == []
    later = SEND_TIME + morning_summary.SUMMARY_RECLAIM_AFTER
    assert morning_summary.summary_send_due(now=later).sent_at is not None
    assert len(morning.messages) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("setting", ["REPORTS_SUMMARY_SEND_AT", "SLACK_WEBHOOK_URL"])
def test_nothing_is_sent_when_switched_off(settings, morning, setting):
    setattr(settings, setting, "")
    assert morning_summary.summary_send_due(now=SEND_TIME) is None
    assert not SummaryDelivery.objects.exists() and morning.messages == []


def test_the_beat_schedules_the_morning_summary_and_the_sales_sync():
    app.loader.import_default_modules()
    app.finalize()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"refunds.tasks.summary_send_due_task", "refunds.tasks.sales_sync_task"} <= scheduled
