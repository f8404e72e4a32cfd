"""Slack: readable messages to a real local HTTP endpoint; Slack trouble never touches a refund."""

import pytest
import requests

from refunds.services import transitions
from refunds.models import RefundStatus
from refunds.tasks import refund_notify_slack_task
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db


def test_status_change_sends_a_readable_block_kit_message(
    slack, agent, manager, django_capture_on_commit_callbacks, published_tasks
):
    refund = RefundFactory(requested_by=agent, amount_minor=12345, product="Blue mug", reason="Arrived broken")
    with django_capture_on_commit_callbacks(execute=True):
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.REJECTED, actor=manager)
    [(name, args)] = published_tasks
    assert (name, args) == ("refund_notify_slack_task", (refund.pk, "pending_approval", "rejected", manager.pk))

    refund_notify_slack_task.apply(args=args).get()  # what the worker would run

    [message] = slack.messages
    assert "Refund rejected" in message["text"] and refund.merchant_refund_id in message["text"]
    assert "(pending_approval → rejected)" in message["text"]
    section = message["blocks"][1]["text"]["text"]
    assert "123.45 USD" in section and "Blue mug" in section and "Arrived broken" in section
    assert "agent" in section and "By manager" in section
    link = message["blocks"][2]["elements"][0]["text"]
    assert f"/admin/refunds/refundrequest/{refund.pk}/change/" in link


@pytest.mark.parametrize("trouble", ["answers 500", "hangs"])
def test_slack_down_does_not_block_or_fail_the_refund(
    trouble, slack, settings, agent, django_capture_on_commit_callbacks, published_tasks
):
    settings.SLACK_TIMEOUT_SECONDS = 0.5
    if trouble == "answers 500":
        slack.status = 500
    else:
        slack.delay_seconds = 5  # far past the client's timeout
    refund = RefundFactory(requested_by=agent)

    # The transition commits and runs its on-commit work without ever calling Slack: the
    # message is handed to the broker, for a worker to post.
    with django_capture_on_commit_callbacks(execute=True):
        canceled = transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED)
    assert canceled.status == RefundStatus.CANCELED
    assert slack.received == 0
    [(name, args)] = published_tasks
    assert (name, args) == ("refund_notify_slack_task", (refund.pk, "pending_approval", "canceled", None))
    refund.refresh_from_db()
    before = (refund.status, refund.updated_at, refund.resolved_at, list(refund.logs.values_list("pk", flat=True)))

    # The worker's task tries, retries (five times), then gives up with Slack's error.
    result = refund_notify_slack_task.apply(args=args)

    assert result.state == "FAILURE"
    assert isinstance(result.result, requests.HTTPError if trouble == "answers 500" else requests.Timeout)
    assert slack.received == 1 + refund_notify_slack_task.max_retries
    assert slack.messages == []
    refund.refresh_from_db()
    after = (refund.status, refund.updated_at, refund.resolved_at, list(refund.logs.values_list("pk", flat=True)))
    assert after == before  # Slack trouble never touches the refund


def test_no_slack_configured_means_no_notification_work(agent, django_capture_on_commit_callbacks, published_tasks):
    refund = RefundFactory(requested_by=agent)
    with django_capture_on_commit_callbacks(execute=True):
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED
    assert published_tasks == []


def test_without_slack_the_demo_logs_each_message(settings, agent, manager, caplog,
                                                 django_capture_on_commit_callbacks, published_tasks):
    """bin/run sets SLACK_LOG_MESSAGES: with no webhook the worker's log shows what Slack would."""
    settings.SLACK_LOG_MESSAGES = True
    refund = RefundFactory(requested_by=agent, amount_minor=4200)
    with django_capture_on_commit_callbacks(execute=True):
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.REJECTED, actor=manager)
    [(name, args)] = published_tasks

    with caplog.at_level("INFO", logger="refunds.services.notifications"):
        refund_notify_slack_task.apply(args=args).get()

    [line] = [r.getMessage() for r in caplog.records if "Slack message" in r.getMessage()]
    assert "Refund rejected" in line and refund.merchant_refund_id in line and "42.00 USD" in line


def test_with_neither_slack_nor_the_log_nothing_is_queued(agent, manager, django_capture_on_commit_callbacks,
                                                          published_tasks):
    refund = RefundFactory(requested_by=agent)
    with django_capture_on_commit_callbacks(execute=True):
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.REJECTED, actor=manager)
    assert published_tasks == []
