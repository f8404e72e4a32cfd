"""Slack: readable messages to a real local HTTP endpoint; Slack trouble never touches a refund.
One message per refund per transaction: the changes it made, in order, where the refund ended
first; a failure or needs-attention alert always reaches Slack, at its own commit."""

import pytest
import requests
from django.db import transaction

from refunds.money import Money
from refunds.services import intake, transitions
from refunds.models import RefundStatus
from refunds.tasks import refund_notify_slack_task, refund_submit_task, refund_sync_status_task
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db


def deliver(published_tasks) -> int:
    """Run the Slack tasks published so far, in order, as the worker would; how many there were."""
    slack_tasks = [args for name, args in published_tasks if name == "refund_notify_slack_task"]
    for args in slack_tasks:
        refund_notify_slack_task.apply(args=args).get()
    published_tasks.clear()
    return len(slack_tasks)


def section(message: dict) -> str:
    return message["blocks"][1]["text"]["text"]


def test_status_change_sends_a_readable_block_kit_message(
    slack, agent, manager, django_capture_on_commit_callbacks, published_tasks
):
    refund = RefundFactory(requested_by=agent, amount_minor=12345, product="Blue mug", reason="Arrived broken")
    with django_capture_on_commit_callbacks(execute=True):
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.REJECTED, actor=manager)
    [(name, args)] = published_tasks
    assert name == "refund_notify_slack_task"

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
    assert name == "refund_notify_slack_task"
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


def file_auto_approved(agent, stripe_sandbox, *, behavior=None):
    pi = stripe_sandbox.create_payment(10_000, behavior=behavior)
    refund, _ = intake.refund_request_create(
        merchant_refund_id=f"note-{pi}", provider="stripe", connector_transaction_id=pi, amount=Money(2000, "USD"),
        reason="", metadata={}, product="Mug", requested_by=agent,
    )
    return refund


def test_an_auto_approved_refund_that_succeeds_is_two_slack_messages(
    slack, agent, stripe_sandbox, django_capture_on_commit_callbacks, published_tasks
):
    # Intake's one transaction makes it (pending approval) and approves it: one Slack task, and
    # it goes to the broker before the refund is handed to the worker.
    with django_capture_on_commit_callbacks(execute=True):
        refund = file_auto_approved(agent, stripe_sandbox)
    assert [name for name, _ in published_tasks] == ["refund_notify_slack_task", "refund_submit_task"]
    assert deliver(published_tasks) == 1

    # The worker's claim (approved → processing) is quiet; its success is the second message.
    with django_capture_on_commit_callbacks(execute=True):
        refund_submit_task.apply(args=(refund.pk,)).get()
    assert [name for name, _ in published_tasks] == ["refund_notify_slack_task"]
    assert deliver(published_tasks) == 1

    mrid = refund.merchant_refund_id
    assert [m["text"] for m in slack.messages] == [
        f":white_check_mark: Refund approved: {mrid} 20.00 USD (new → pending_approval → approved)",
        f":moneybag: Refund succeeded: {mrid} 20.00 USD (processing → succeeded)",
    ]
    assert [m["blocks"][0]["text"]["text"] for m in slack.messages] == [
        ":white_check_mark: Refund approved", ":moneybag: Refund succeeded",
    ]
    assert "Requested by agent · Mug" in section(slack.messages[0])


def test_a_refund_that_fails_at_the_provider_is_an_alert_with_its_reason(
    slack, agent, stripe_sandbox, django_capture_on_commit_callbacks, published_tasks
):
    with django_capture_on_commit_callbacks(execute=True):
        refund = file_auto_approved(agent, stripe_sandbox, behavior="stay_pending")
    deliver(published_tasks)
    with django_capture_on_commit_callbacks(execute=True):
        refund_submit_task.apply(args=(refund.pk,)).get()
    assert deliver(published_tasks) == 0  # pending at Stripe: still processing, nothing to say

    refund.refresh_from_db()
    stripe_sandbox.settle(refund.connector_refund_id, "failed", failure_reason="expired_or_canceled_card")
    with django_capture_on_commit_callbacks(execute=True):
        refund_sync_status_task.apply(args=(refund.pk,)).get()
    assert deliver(published_tasks) == 1

    failed = slack.messages[-1]
    assert failed["text"] == f":x: Refund failed: {refund.merchant_refund_id} 20.00 USD (processing → failed)"
    assert failed["blocks"][0]["text"]["text"] == ":x: Refund failed"
    assert "Error `expired_or_canceled_card`" in section(failed)


def test_a_refund_the_provider_keeps_refusing_asks_a_person_at_once(
    slack, agent, stripe_sandbox, stripe_sandbox_clean, settings, django_capture_on_commit_callbacks, published_tasks
):
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 1
    with django_capture_on_commit_callbacks(execute=True):
        refund = file_auto_approved(agent, stripe_sandbox)
    deliver(published_tasks)
    stripe_sandbox.set_faults(status=502, count=1, path_prefix="/v1/refunds", methods=["POST"])

    with django_capture_on_commit_callbacks(execute=True):
        refund_submit_task.apply(args=(refund.pk,)).get()
    assert deliver(published_tasks) == 1

    alert = slack.messages[-1]
    assert alert["text"] == (
        f":rotating_light: Refund needs attention: {refund.merchant_refund_id} 20.00 USD (processing → needs_attention)"
    )
    assert "stripe kept failing after 1 attempts" in section(alert)


def test_changes_in_one_transaction_are_one_message_in_order_and_separate_ones_are_not_merged(
    slack, agent, manager, django_capture_on_commit_callbacks, published_tasks
):
    refund = RefundFactory(requested_by=agent, amount_minor=4200)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.APPROVED, actor=manager)
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED, actor=manager)
    assert deliver(published_tasks) == 1
    [together] = slack.messages
    assert together["text"] == (
        f":heavy_multiplication_x: Refund canceled: {refund.merchant_refund_id} 42.00 USD"
        " (pending_approval → approved → canceled)"
    )
    assert "By manager (approved), manager (canceled)" in section(together)

    other = RefundFactory(requested_by=agent)
    with django_capture_on_commit_callbacks(execute=True):
        transitions.refund_transition(refund_id=other.pk, to_status=RefundStatus.APPROVED, actor=manager)
    with django_capture_on_commit_callbacks(execute=True):
        transitions.refund_transition(refund_id=other.pk, to_status=RefundStatus.CANCELED, actor=manager)
    assert deliver(published_tasks) == 2
    assert [m["text"].split(":")[1] for m in slack.messages[1:]] == ["white_check_mark", "heavy_multiplication_x"]


def test_a_needs_attention_alert_on_the_way_is_not_merged_away(
    slack, agent, manager, django_capture_on_commit_callbacks, published_tasks
):
    refund = RefundFactory(requested_by=agent)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        transitions.refund_flag_for_attention(refund_id=refund.pk, message="A dispute was opened on the payment")
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.PENDING_APPROVAL, actor=manager)
    assert deliver(published_tasks) == 1

    [message] = slack.messages
    assert message["text"].startswith(":hourglass_flowing_sand: Refund awaiting approval")
    assert message["text"].endswith(
        "(pending_approval → needs_attention → pending_approval) · :rotating_light: Refund needs attention on the way"
    )
    first_line = section(message).splitlines()[0]
    assert first_line == ":rotating_light: Refund needs attention on the way: A dispute was opened on the payment"


def test_a_change_rolled_back_with_its_savepoint_is_not_announced(
    slack, agent, manager, django_capture_on_commit_callbacks, published_tasks
):
    refund = RefundFactory(requested_by=agent)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        try:
            with transaction.atomic():
                transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.APPROVED, actor=manager)
                raise RuntimeError("something after the approval failed")
        except RuntimeError:
            pass
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.REJECTED, actor=manager)
    assert deliver(published_tasks) == 1

    [message] = slack.messages
    assert message["text"] == f":no_entry: Refund rejected: {refund.merchant_refund_id} {refund.amount_display} (pending_approval → rejected)"
    assert "approved" not in message["text"] + section(message)


def test_a_message_queued_by_the_release_before_is_still_posted(slack, agent, manager):
    refund = RefundFactory(requested_by=agent, status=RefundStatus.REJECTED)

    refund_notify_slack_task.apply(args=(refund.pk, "pending_approval", "rejected", manager.pk)).get()

    [message] = slack.messages
    assert message["text"] == f":no_entry: Refund rejected: {refund.merchant_refund_id} {refund.amount_display} (pending_approval → rejected)"
    assert "By manager" in section(message)
