"""Reminders before a refund goes stale: one per threshold per refund, mentioning the linked
approvers whose limit covers it; claimed in the database so concurrent beats send each once;
a failed send is sent again later; the dashboard lists refunds past the first threshold."""

import datetime
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from approvals.models import ApproverLimit
from refunds.models import RefundRequest, RefundStatus, SlackReminder
from refunds.roles import FINANCE_MANAGERS
from refunds.services import slack_reminders
from tests import factories
from tests.second_factor import force_login_confirmed
from tests.slack.conftest import MANAGER2_SLACK, MANAGER_SLACK, link, waiting_refund


def aged(refund, hours):
    RefundRequest.objects.filter(pk=refund.pk).update(created_at=timezone.now() - datetime.timedelta(hours=hours))
    return refund


def reminders(emulator):
    return [m for m in emulator.messages() if ":alarm_clock:" in m["text"]]


@pytest.mark.django_db
def test_one_reminder_per_threshold_per_refund(slack_app, settings):
    settings.SLACK_REMINDER_HOURS = [4, 24]
    young = waiting_refund(merchant_refund_id="young")
    five = aged(waiting_refund(merchant_refund_id="five-hours"), 5)
    day = aged(waiting_refund(merchant_refund_id="a-day"), 25)
    aged(waiting_refund(merchant_refund_id="decided", status=RefundStatus.APPROVED), 30)

    assert slack_reminders.slack_reminders_send_due() == 3  # five-hours at 4 h; a-day at 4 h and 24 h
    assert slack_reminders.slack_reminders_send_due() == 0
    texts = [m["text"] for m in reminders(slack_app)]
    assert sum("five-hours" in t and "over 4 hours" in t for t in texts) == 1
    assert sum("a-day" in t for t in texts) == 2 and any("over 24 hours" in t for t in texts)
    assert not any("young" in t or "decided" in t for t in texts)
    assert set(SlackReminder.objects.values_list("refund_id", "threshold_minutes")) == {
        (five.pk, 240), (day.pk, 240), (day.pk, 1440)}
    assert young.slack_reminders.count() == 0


@pytest.mark.django_db
def test_a_reminder_mentions_the_linked_approvers_whose_limit_covers_it(slack_app, settings, manager, manager2, agent):
    settings.SLACK_REMINDER_HOURS = [4]
    ApproverLimit.objects.update_or_create(group=Group.objects.get(name=FINANCE_MANAGERS), currency="",
                                           defaults={"max_minor_amount": 10_000})
    ApproverLimit.objects.create(user=manager2, currency="USD", max_minor_amount=1_000_000)
    link(manager, MANAGER_SLACK)
    link(manager2, MANAGER2_SLACK)
    link(agent, "U0AGENT001")
    aged(waiting_refund(merchant_refund_id="big"), 5)
    slack_reminders.slack_reminders_send_due()
    [reminder] = reminders(slack_app)
    assert f"<@{MANAGER2_SLACK}>" in reminder["text"]
    assert f"<@{MANAGER_SLACK}>" not in reminder["text"] and "U0AGENT001" not in reminder["text"]


@pytest.mark.django_db
def test_a_failed_reminder_is_sent_again_later(slack_app, settings):
    settings.SLACK_REMINDER_HOURS = [4]
    refund = aged(waiting_refund(), 5)
    slack_app.configure(faults={"status": 503, "count": None})
    assert slack_reminders.slack_reminders_send_due() == 0
    claim = SlackReminder.objects.get()
    assert claim.sent_at is None and "service_unavailable" in claim.error
    slack_app.configure(faults={})
    assert slack_reminders.slack_reminders_send_due() == 0  # the claim is young: not yet
    later = timezone.now() + slack_reminders.RECLAIM_AFTER + datetime.timedelta(seconds=1)
    assert slack_reminders.slack_reminders_send_due(now=later) == 1
    assert SlackReminder.objects.get().sent_at is not None and len(reminders(slack_app)) == 1
    assert refund.slack_reminders.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_beats_send_each_reminder_once(slack_app, settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    settings.SLACK_REMINDER_HOURS = [4, 24]
    for n in range(6):
        aged(waiting_refund(merchant_refund_id=f"stale-{n}"), 30)
    start = threading.Barrier(4)
    counts = []

    def beat():
        try:
            start.wait()
            counts.append(slack_reminders.slack_reminders_send_due())
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 12 and len(reminders(slack_app)) == 12
    assert SlackReminder.objects.filter(sent_at__isnull=False).count() == 12


@pytest.mark.django_db
def test_the_dashboard_lists_refunds_past_their_threshold(client, settings):
    settings.SLACK_REMINDER_HOURS = [4, 24]
    aged(waiting_refund(merchant_refund_id="old-one", amount_minor=12_345), 26)
    waiting_refund(merchant_refund_id="new-one")
    boss = factories.UserFactory(username="boss", is_superuser=True)
    force_login_confirmed(client, boss)
    page = client.get("/reports/")
    assert page.status_code == 200
    html = page.content.decode()
    section = html[html.index('data-testid="past-threshold"'):]
    assert "Waiting past 4 h" in section and "old-one" in section and "123.45" in section and "1 d 2 h" in section
    assert "new-one" not in section
