import datetime

import pytest
from django.utils import timezone

from refunds.models import SlackIdentity
from refunds.services.slack_approvals import approval_message_sync
from tests import factories

MANAGER_SLACK = "U0MANAGER1"
MANAGER2_SLACK = "U0MANAGER2"
AGENT_SLACK = "U0AGENT001"
STRANGER_SLACK = "U0STRANGER"


def link(user, slack_user_id, *, fresh=True) -> SlackIdentity:
    """The person linked their Slack user (through the sign-in link) and, when `fresh`, confirmed
    with their authenticator just now; otherwise an hour ago."""
    at = timezone.now() if fresh else timezone.now() - datetime.timedelta(hours=1)
    return SlackIdentity.objects.create(user=user, slack_user_id=slack_user_id, team_id="T0EMULATOR", second_factor_at=at)


def waiting_refund(**fields):
    fields.setdefault("amount_minor", 30_000)
    fields.setdefault("reason", "Damaged on arrival <b>&</b>")
    fields.setdefault("product", "Blue kettle")
    fields.setdefault("payment__amount_minor", 100_000)
    return factories.RefundFactory(**fields)


def message_of(emulator, refund) -> dict:
    """The refund's message as the channel shows it now."""
    refund.slack_message.refresh_from_db()
    ts = refund.slack_message.ts
    return next(m for m in emulator.messages() if m["ts"] == ts)


def text_of(message: dict) -> str:
    parts = [message.get("text", "")]
    for block in message.get("blocks") or []:
        for obj in [block.get("text") or {}, *(block.get("elements") or []), *(block.get("fields") or [])]:
            if isinstance(obj, dict):
                parts.append(obj.get("text") if isinstance(obj.get("text"), str) else (obj.get("text") or {}).get("text", ""))
    return "\n".join(p for p in parts if p)


def buttons_of(message: dict) -> list[str]:
    return [e["action_id"] for b in message.get("blocks") or [] if b.get("type") == "actions" for e in b["elements"]]


def post(refund):
    """What the worker's sync task does once the refund waits."""
    return approval_message_sync(refund_id=refund.pk)


@pytest.fixture
def interactive(slack_app, live_server):
    """The Slack app on, and the emulator sending clicks to this test's live server."""
    slack_app.configure(interactions_url=f"{live_server.url}/slack/interactions")
    return slack_app
