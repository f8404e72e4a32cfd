"""Slack: readable messages to a real local HTTP endpoint; Slack trouble never touches a refund."""

import pytest
import requests

from refunds.services import transitions
from refunds.models import RefundStatus
from refunds.tasks import refund_notify_slack_task
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db


def test_status_change_sends_a_readable_block_kit_message(slack, agent, manager, django_capture_on_commit_callbacks):
    refund = RefundFactory(requested_by=agent, amount_minor=12345, product="Blue mug", reason="Arrived broken")
    with django_capture_on_commit_callbacks() as callbacks:
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.REJECTED, actor=manager)
    assert len(callbacks) == 1

    refund_notify_slack_task.apply(args=(refund.pk, "pending_approval", "rejected", manager.pk)).get()

    [message] = slack.messages
    assert "Refund rejected" in message["text"] and refund.merchant_refund_id in message["text"]
    section = message["blocks"][1]["text"]["text"]
    assert "123.45 USD" in section and "Blue mug" in section and "Arrived broken" in section
    assert "agent" in section and "By manager" in section
    link = message["blocks"][2]["elements"][0]["text"]
    assert f"/admin/refunds/refundrequest/{refund.pk}/change/" in link


def test_slack_down_does_not_block_or_fail_the_refund(slack, agent, django_capture_on_commit_callbacks):
    slack.status = 500
    refund = RefundFactory(requested_by=agent)

    with django_capture_on_commit_callbacks(execute=False):
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED)
    result = refund_notify_slack_task.apply(args=(refund.pk, "pending_approval", "canceled", None))

    refund.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED
    assert isinstance(result.result, requests.HTTPError) or result.state in ("RETRY", "FAILURE")
    assert slack.messages == []


def test_no_slack_configured_means_no_notification_work(agent, django_capture_on_commit_callbacks):
    refund = RefundFactory(requested_by=agent)
    with django_capture_on_commit_callbacks() as callbacks:
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED)
    assert callbacks == []
