"""The approval message: posted once when a refund waits, with what a decision needs and the
buttons; kept true after decisions made anywhere (admin, API, Slack) and at the final status;
Slack being down never touches a refund, and the message is posted once Slack is back."""

import pytest
from django.contrib.auth.models import Group
from slack_sdk.errors import SlackApiError

from approvals.models import ApproverLimit
from refunds.models import RefundRequest, RefundStatus, SlackApprovalMessage
from refunds.money import Money
from refunds.roles import FINANCE_MANAGERS
from refunds.services import intake, slack_approvals
from refunds.services.transitions import refund_transition
from refunds.slack import messages
from refunds.tasks import refund_submit_task
from tests.slack.conftest import buttons_of, message_of, post, text_of, waiting_refund

pytestmark = pytest.mark.django_db


def test_a_waiting_refund_is_posted_once_with_what_a_decision_needs(slack_app, agent):
    earlier = waiting_refund(amount_minor=2_500, status=RefundStatus.SUCCEEDED, requested_by=agent, connector_refund_id="re_1")
    refund = waiting_refund(payment=earlier.payment, requested_by=agent)

    post(refund)
    post(refund)  # nothing changed: no second message, no update

    [message] = slack_app.messages()
    assert message["channel"] == slack_app.channel and message["updates"] == 0
    text = text_of(message)
    assert "300.00 USD" in text and refund.connector_transaction_id in text and "agent" in text
    assert "Blue kettle" in text and "Damaged on arrival &lt;b&gt;&amp;&lt;/b&gt;" in text  # escaped, shown literally
    assert "Refundable remainder of the payment: 975.00 USD" in text
    assert "Earlier refunds on this payment: 1 (25.00 USD)" in text
    assert "Needs: an approver whose limit covers 300.00 USD" in text
    assert f"/admin/refunds/refundrequest/{refund.pk}/change/|{refund.merchant_refund_id}>" in text
    assert buttons_of(message) == [messages.APPROVE, messages.APPROVE_WITH_COMMENT, messages.REJECT]
    assert len(slack_app.calls("chat.postMessage")) == 1 and not slack_app.calls("chat.update")


def test_a_refund_that_never_waited_gets_no_message(slack_app):
    refund = waiting_refund(status=RefundStatus.APPROVED)
    assert post(refund) is None
    assert slack_app.messages() == [] and not SlackApprovalMessage.objects.exists()


def test_filing_and_deciding_enqueue_the_message_sync(slack_app, api, agent, manager, stripe_sandbox, published_tasks,
                                                      django_capture_on_commit_callbacks):
    pi = stripe_sandbox.create_payment(100_000)
    with django_capture_on_commit_callbacks(execute=True):
        filed = api(agent).post("/api/refunds/", {"merchant_refund_id": "sl-1", "connector_transaction_id": pi,
                                                  "amount": {"minor_amount": 30_000, "currency": "USD"}}, format="json")
    assert filed.json()["status"] == "pending_approval"
    syncs = [args for name, args in published_tasks if name == "slack_approval_message_sync_task"]
    [(refund_id,)] = syncs  # one per refund per transaction: the task shows what is current
    published_tasks.clear()
    with django_capture_on_commit_callbacks(execute=True):
        api(manager).post("/api/refunds/sl-1/approve/", {"comment": "fine"}, format="json")
    # The approval row and the status change are one transaction: one sync, not two.
    assert [t for t in published_tasks if t[0] == "slack_approval_message_sync_task"] == [
        ("slack_approval_message_sync_task", (refund_id,))
    ]


def test_the_message_follows_decisions_made_in_the_api_to_the_final_status(slack_app, api, manager):
    refund = waiting_refund(merchant_refund_id="sl-api")
    post(refund)
    assert api(manager).post("/api/refunds/sl-api/approve/", {"comment": "order checked"}, format="json").status_code == 200

    post(refund)  # the sync the approval enqueued
    message = message_of(slack_app, refund)
    assert buttons_of(message) == [] and message["updates"] == 1
    assert "Approved by manager: order checked" in text_of(message)

    refund_transition(refund_id=refund.pk, to_status=RefundStatus.PROCESSING, message="sent")
    refund_transition(refund_id=refund.pk, to_status=RefundStatus.SUCCEEDED, message="done")
    post(refund)
    text = text_of(message_of(slack_app, refund))
    assert "Refunded: the provider confirmed it" in text and "Approved by manager" in text
    assert len(slack_app.messages()) == 1


def test_a_rejection_in_the_api_shows_its_reason(slack_app, api, manager):
    refund = waiting_refund(merchant_refund_id="sl-rej")
    post(refund)
    api(manager).post("/api/refunds/sl-rej/reject/", {"comment": "duplicate of sl-1"}, format="json")
    post(refund)
    message = message_of(slack_app, refund)
    assert buttons_of(message) == [] and "Rejected by manager: duplicate of sl-1" in text_of(message)


def test_a_lower_tier_approval_keeps_the_buttons_and_says_a_higher_tier_is_needed(slack_app, api, manager):
    managers = Group.objects.get(name=FINANCE_MANAGERS)
    ApproverLimit.objects.update_or_create(group=managers, currency="", defaults={"max_minor_amount": 10_000})
    refund = waiting_refund(merchant_refund_id="sl-tier")
    post(refund)
    api(manager).post("/api/refunds/sl-tier/approve/", {}, format="json")
    post(refund)
    message = message_of(slack_app, refund)
    text = text_of(message)
    assert "Approved at tier 1 by manager (limit 100.00 USD); needs a higher tier" in text
    assert "(tier 2)" in text and len(buttons_of(message)) == 3


def test_slack_down_leaves_refunds_alone_and_the_message_is_posted_when_it_is_back(
    slack_app, api, agent, manager, stripe_sandbox
):
    slack_app.configure(faults={"status": 503, "count": None})
    pi = stripe_sandbox.create_payment(100_000)
    filed = api(agent).post("/api/refunds/", {"merchant_refund_id": "sl-down", "connector_transaction_id": pi,
                                              "amount": {"minor_amount": 30_000, "currency": "USD"}}, format="json")
    assert filed.status_code == 201 and filed.json()["status"] == "pending_approval"
    refund = RefundRequest.objects.get(merchant_refund_id="sl-down")
    with pytest.raises(SlackApiError):
        post(refund)  # the task retries on this
    assert not SlackApprovalMessage.objects.filter(refund=refund).exists()  # the claim rolled back
    assert slack_approvals.approval_messages_missing(older_than_seconds=0) == [refund.pk]

    slack_app.configure(faults={})
    post(refund)
    assert len(slack_app.messages()) == 1
    assert slack_approvals.approval_messages_missing(older_than_seconds=0) == []
    # A decision while Slack is down again still decides; the message catches up afterwards.
    slack_app.configure(faults={"status": 500, "count": None})
    assert api(manager).post("/api/refunds/sl-down/approve/", {}, format="json").status_code == 200
    with pytest.raises(SlackApiError):
        post(refund)
    slack_app.configure(faults={})
    post(refund)
    assert "Approved by manager" in text_of(message_of(slack_app, refund))


def test_a_message_deleted_in_slack_is_posted_again_with_the_current_picture(slack_app, api, manager):
    refund = waiting_refund(merchant_refund_id="sl-gone")
    post(refund)
    slack_app.reset()  # the channel lost it
    api(manager).post("/api/refunds/sl-gone/approve/", {}, format="json")
    post(refund)
    [message] = slack_app.messages()
    assert "Approved by manager" in text_of(message) and buttons_of(message) == []
    assert message_of(slack_app, refund)["ts"] == message["ts"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_task_asks_for_one_message_sync_when_it_ends(slack_app, slack, agent, stripe_sandbox, published_tasks):
    """The submit task commits processing, then succeeded: the approval message is brought up to
    date once, when the task ends, showing where the refund ended; the channel's status message
    (an event people read in order) is not held back: it is published at its own commit."""
    pi = stripe_sandbox.create_payment(10_000)
    refund, _ = intake.refund_request_create(
        merchant_refund_id="sl-worker", provider="stripe", connector_transaction_id=pi, amount=Money(2000, "USD"),
        reason="", metadata={}, product="", requested_by=agent,
    )
    assert [name for name, _ in published_tasks] == [
        "refund_notify_slack_task", "slack_approval_message_sync_task", "refund_submit_task",
    ]
    published_tasks.clear()

    refund_submit_task.apply(args=(refund.pk,)).get()

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert published_tasks == [
        ("refund_notify_slack_task", (refund.pk, [refund.logs.get(to_status=RefundStatus.SUCCEEDED).pk])),
        ("slack_approval_message_sync_task", (refund.pk,)),
    ]
