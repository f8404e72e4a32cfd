"""Clicks and modal submissions from the Slack emulator to the app over HTTP: the signature,
the replay guard, the mapping of Slack users, and every rule of the approval policy applied to
decisions from Slack (the approvals service decides; Slack only asks)."""

import hashlib
import hmac
import json
import time
from datetime import timedelta
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from approvals.models import Approval, ApproverLimit
from refunds.models import RefundRequest, RefundStatus, SlackInteraction
from refunds.roles import FINANCE_MANAGERS
from refunds.services.slack_approvals import slack_interactions_prune
from refunds.slack import messages
from tests.slack.conftest import (
    AGENT_SLACK,
    MANAGER2_SLACK,
    MANAGER_SLACK,
    STRANGER_SLACK,
    buttons_of,
    link,
    message_of,
    post,
    text_of,
    waiting_refund,
)

pytestmark = pytest.mark.django_db(transaction=True)


def status(refund):
    refund.refresh_from_db()
    return refund.status


def told(emulator, user) -> str:
    """The last ephemeral message `user` saw."""
    said = emulator.ephemerals(user)
    assert said, f"{user} was told nothing"
    return said[-1]["text"]


def click(emulator, refund, user, action=messages.APPROVE) -> dict:
    answer = emulator.click(user=user, ts=refund.slack_message.ts, action_id=action)
    assert answer["status"] == 200, answer
    return answer


# --- The signature -----------------------------------------------------------------------------


def _signed_post(url, emulator, body: str, *, timestamp=None, signature=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"X-Slack-Request-Timestamp": timestamp, "Content-Type": "application/x-www-form-urlencoded"}
    if signature is None:
        digest = hmac.new(emulator.signing_secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
        signature = f"v0={digest.hexdigest()}"
    if signature:
        headers["X-Slack-Signature"] = signature
    return requests.post(url, data=body.encode(), headers=headers, timeout=10)


def test_requests_without_a_good_fresh_signature_decide_nothing(interactive, live_server, manager):
    link(manager, MANAGER_SLACK)
    refund = waiting_refund()
    post(refund)
    url = f"{live_server.url}/slack/interactions"
    payload = {"type": "block_actions", "user": {"id": MANAGER_SLACK}, "channel": {"id": interactive.channel},
               "actions": [{"action_id": messages.APPROVE, "value": str(refund.pk)}]}
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})

    assert _signed_post(url, interactive, body, signature="").json() == {"error": "signature_missing"}
    assert _signed_post(url, interactive, body, signature="v0=" + "0" * 64).json() == {"error": "signature_invalid"}
    stale = _signed_post(url, interactive, body, timestamp=int(time.time()) - 301)
    assert (stale.status_code, stale.json()) == (401, {"error": "timestamp_stale"})
    future = _signed_post(url, interactive, body, timestamp=int(time.time()) + 301)
    assert future.json() == {"error": "timestamp_stale"}
    assert _signed_post(url, interactive, body, timestamp="12ab", signature="v0=x").json() == {"error": "timestamp_invalid"}
    bad_bytes = requests.post(url, data=b"payload=\xff\xfe", timeout=10, headers={
        "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=abc"})
    assert bad_bytes.status_code == 401
    tampered = body.replace(str(refund.pk), str(refund.pk + 1000))
    good = _signed_post(url, interactive, body)
    wrong = requests.post(url, data=tampered.encode(), timeout=10, headers={
        "X-Slack-Request-Timestamp": good.request.headers["X-Slack-Request-Timestamp"],
        "X-Slack-Signature": good.request.headers["X-Slack-Signature"],
        "Content-Type": "application/x-www-form-urlencoded"})
    assert wrong.json() == {"error": "signature_invalid"}
    assert good.status_code == 200 and status(refund) == RefundStatus.APPROVED  # the genuine one decided


def test_a_replayed_click_decides_nothing(interactive, manager, manager2):
    link(manager, MANAGER_SLACK)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK)
    assert status(refund) == RefundStatus.APPROVED
    Approval.objects.all().delete()
    RefundRequest.objects.filter(pk=refund.pk).update(status=RefundStatus.PENDING_APPROVAL)  # as if nothing happened

    again = interactive.replay()
    assert (again["status"], again["json"]) == (409, {"error": "replayed"})
    assert status(refund) == RefundStatus.PENDING_APPROVAL and not Approval.objects.exists()
    assert SlackInteraction.objects.count() == 1


# --- Who clicks -------------------------------------------------------------------------------


def test_an_unlinked_slack_user_is_told_how_to_link_and_decides_nothing(interactive, live_server):
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, STRANGER_SLACK)
    text = told(interactive, STRANGER_SLACK)
    assert "not linked to Refund Office" in text and "/slack/link/?t=" in text
    assert status(refund) == RefundStatus.PENDING_APPROVAL


def test_a_display_name_maps_nobody(interactive, manager):
    """A Slack user named "manager" (the app user's username) is nobody until linked."""
    interactive.reset(users=[{"id": "U0IMPOSTOR", "name": "manager", "real_name": "manager"}])
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, "U0IMPOSTOR")
    assert "not linked" in told(interactive, "U0IMPOSTOR") and status(refund) == RefundStatus.PENDING_APPROVAL


def test_a_stale_second_factor_answers_with_a_link_to_confirm(interactive, manager):
    link(manager, MANAGER_SLACK, fresh=False)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK)
    text = told(interactive, MANAGER_SLACK)
    assert "Confirm in Refund Office" in text and "/slack/confirm/" in text
    assert status(refund) == RefundStatus.PENDING_APPROVAL


# --- The policy, through Slack ---------------------------------------------------------------


def test_a_manager_approves_within_their_limit_and_the_message_says_so(interactive, manager):
    link(manager, MANAGER_SLACK)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK)
    assert status(refund) == RefundStatus.APPROVED
    assert refund.approvals.get().approver == manager
    assert refund.logs.filter(actor=manager, to_status=RefundStatus.APPROVED).exists()
    assert told(interactive, MANAGER_SLACK) == f"You approved {refund.merchant_refund_id}."
    post(refund)  # the sync the decision enqueued
    message = message_of(interactive, refund)
    assert buttons_of(message) == [] and "Approved by manager" in text_of(message)


def test_an_approval_above_the_limit_records_a_tier_and_the_refund_waits(interactive, manager):
    ApproverLimit.objects.update_or_create(group=Group.objects.get(name=FINANCE_MANAGERS), currency="",
                                           defaults={"max_minor_amount": 10_000})
    link(manager, MANAGER_SLACK)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK)
    assert status(refund) == RefundStatus.PENDING_APPROVAL and refund.approvals.get().tier == 1
    assert "needs an approver with a higher limit" in told(interactive, MANAGER_SLACK)
    click(interactive, refund, MANAGER_SLACK)  # the same person cannot count twice
    assert "already approved this refund" in told(interactive, MANAGER_SLACK)
    assert refund.approvals.count() == 1


def test_nobody_approves_their_own_refund_from_slack(interactive, manager):
    link(manager, MANAGER_SLACK)
    refund = waiting_refund(requested_by=manager)
    post(refund)
    click(interactive, refund, MANAGER_SLACK)
    assert "Nobody approves or rejects a refund they requested." in told(interactive, MANAGER_SLACK)
    assert status(refund) == RefundStatus.PENDING_APPROVAL


def test_an_agent_linked_to_slack_cannot_decide(interactive, agent):
    link(agent, AGENT_SLACK)
    refund = waiting_refund(requested_by=None)
    post(refund)
    click(interactive, refund, AGENT_SLACK)
    assert "Only finance managers may approve or reject refunds." in told(interactive, AGENT_SLACK)
    click(interactive, refund, AGENT_SLACK, messages.REJECT)
    assert interactive.views() == [] and status(refund) == RefundStatus.PENDING_APPROVAL


def test_reject_opens_a_modal_that_needs_a_reason(interactive, manager):
    link(manager, MANAGER_SLACK)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK, messages.REJECT)
    [view] = interactive.views()
    assert view["view"]["callback_id"] == messages.REJECT and view["user"] == MANAGER_SLACK

    empty = interactive.submit(user=MANAGER_SLACK, view_id=view["id"], values={messages.REASON_BLOCK: "   "})
    assert empty["json"] == {"response_action": "errors",
                             "errors": {messages.REASON_BLOCK: "A rejection needs a reason."}}
    assert status(refund) == RefundStatus.PENDING_APPROVAL and len(interactive.views()) == 1

    done = interactive.submit(user=MANAGER_SLACK, view_id=view["id"], values={messages.REASON_BLOCK: "Duplicate"})
    assert done["status"] == 200 and interactive.views() == []
    assert status(refund) == RefundStatus.REJECTED
    assert refund.approvals.get().comment == "Duplicate"
    post(refund)
    assert "Rejected by manager: Duplicate" in text_of(message_of(interactive, refund))


def test_approve_with_a_comment(interactive, manager):
    link(manager, MANAGER_SLACK)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK, messages.APPROVE_WITH_COMMENT)
    [view] = interactive.views()
    interactive.submit(user=MANAGER_SLACK, view_id=view["id"], values={messages.COMMENT_BLOCK: "Order checked"})
    assert status(refund) == RefundStatus.APPROVED and refund.approvals.get().comment == "Order checked"


def test_the_second_person_is_told_it_was_already_decided(interactive, manager, manager2):
    link(manager, MANAGER_SLACK)
    link(manager2, MANAGER2_SLACK)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK)
    click(interactive, refund, MANAGER2_SLACK, messages.REJECT)
    assert told(interactive, MANAGER2_SLACK) == f"Already decided: {refund.merchant_refund_id} is approved."
    click(interactive, refund, MANAGER2_SLACK)
    assert told(interactive, MANAGER2_SLACK) == f"Already decided: {refund.merchant_refund_id} is approved."
    assert refund.approvals.count() == 1 and interactive.views() == []


def test_two_managers_clicking_at_once_make_one_decision(interactive, manager, manager2):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite lets one writer in at a time)")
    link(manager, MANAGER_SLACK)
    link(manager2, MANAGER2_SLACK)
    for _ in range(3):
        refund = waiting_refund()
        post(refund)
        ts = refund.slack_message.ts
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(
                lambda user: interactive.click(user=user, ts=ts, action_id=messages.APPROVE), [MANAGER_SLACK, MANAGER2_SLACK]
            ))
        assert [a["status"] for a in answers] == [200, 200]
        assert status(refund) == RefundStatus.APPROVED and refund.approvals.count() == 1
        winner = refund.approvals.get().approver
        said = {user: told(interactive, user) for user in (MANAGER_SLACK, MANAGER2_SLACK)}
        loser = MANAGER2_SLACK if winner == manager else MANAGER_SLACK
        assert said[loser] == f"Already decided: {refund.merchant_refund_id} is approved."
        assert said[MANAGER_SLACK if loser == MANAGER2_SLACK else MANAGER2_SLACK] == f"You approved {refund.merchant_refund_id}."


ODD_PAYLOADS = [
    "not json", json.dumps([1, 2]), json.dumps({"type": "block_actions", "user": "U0MANAGER1"}),
    json.dumps({"type": "block_actions", "user": {"id": MANAGER_SLACK}, "actions": {"a": 1}, "team": "T"}),
    json.dumps({"type": "block_actions", "user": {"id": [1]}, "actions": ["x"], "channel": 5}),
    json.dumps({"type": "block_actions", "user": {"id": MANAGER_SLACK},
                "actions": [{"action_id": messages.APPROVE, "value": "9" * 40}]}),
    json.dumps({"type": "view_submission", "user": {"id": MANAGER_SLACK},
                "view": {"callback_id": messages.REJECT, "private_metadata": "1:C", "state": {"values": [1]}}}),
    json.dumps({"type": "view_submission", "user": {"id": MANAGER_SLACK}, "view": "v"}),
    json.dumps({"type": {"x": 1}, "user": {"id": MANAGER_SLACK}}),
]


def test_signed_payloads_of_any_shape_are_answered_without_a_server_error(interactive, live_server, manager):
    link(manager, MANAGER_SLACK)
    for payload in ODD_PAYLOADS:
        body = urllib.parse.urlencode({"payload": payload})
        answer = _signed_post(f"{live_server.url}/slack/interactions", interactive, body)
        assert answer.status_code in (200, 400), (payload, answer.text)
        if answer.status_code == 400:
            assert answer.json() == {"error": "payload_invalid"}


def test_old_replay_records_are_pruned(interactive, manager):
    link(manager, MANAGER_SLACK)
    refund = waiting_refund()
    post(refund)
    click(interactive, refund, MANAGER_SLACK)
    assert slack_interactions_prune() == 0
    SlackInteraction.objects.update(received_at=timezone.now() - timedelta(hours=2))
    assert slack_interactions_prune() == 1 and not SlackInteraction.objects.exists()
