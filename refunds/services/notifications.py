"""Slack messages about refunds (incoming webhook, Block Kit). Best effort by design: a slow or
absent Slack never holds up a refund; the notification task retries a few times, then gives up.
One message per refund per transaction: the status changes it made, read back from the log,
published right after that commit (never held for a later one, so a failure or needs-attention
alert goes out at once). What can still lose one, as before: the process dying between the
commit and the publish, or the broker refusing it (logged); the refund's log is the record."""

import logging
from collections.abc import Sequence

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from refunds.models import RefundLog, RefundRequest, RefundStatus

logger = logging.getLogger(__name__)

_HEADLINES = {
    RefundStatus.PENDING_APPROVAL: ":hourglass_flowing_sand: Refund awaiting approval",
    RefundStatus.APPROVED: ":white_check_mark: Refund approved",
    RefundStatus.PROCESSING: ":arrows_counterclockwise: Refund sent to the provider",
    RefundStatus.SUCCEEDED: ":moneybag: Refund succeeded",
    RefundStatus.FAILED: ":x: Refund failed",
    RefundStatus.REJECTED: ":no_entry: Refund rejected",
    RefundStatus.CANCELED: ":heavy_multiplication_x: Refund canceled",
    RefundStatus.NEEDS_ATTENTION: ":rotating_light: Refund needs attention",
}


def slack_escape(text) -> str:
    """Text from outside (people, providers) as Slack shows it literally: `&`, `<` and `>` are
    its control characters (mentions like <!channel>, links like <url|label>), so they are sent
    as &amp; &lt; &gt;, Slack's own rule. Only our own markup is left unescaped."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _person(user) -> str:
    if user is None:
        return "Refund Office"
    return slack_escape(user.get_full_name() or user.get_username())


# What a person must not miss: an alert passed on the way to another status keeps its own line.
ALERT_STATUSES = frozenset({RefundStatus.NEEDS_ATTENTION, RefundStatus.FAILED})


def _trail(changes: Sequence[RefundLog]) -> str:
    """`new → pending_approval → approved`; a gap (a quiet change in between) starts a new part."""
    parts: list[list[str]] = []
    for change in changes:
        if parts and parts[-1][-1] == change.from_status:
            parts[-1].append(change.to_status)
        else:
            parts.append([change.from_status or "new", change.to_status])
    return ", ".join(" → ".join(part) for part in parts)


def _by(refund: RefundRequest, changes: Sequence[RefundLog]) -> list[str]:
    acted = [c for c in changes if c.actor is not None and c.actor.pk != refund.requested_by_id]
    if not acted:
        return []
    if len(changes) == 1:
        return [f"By {_person(acted[0].actor)}"]
    return ["By " + ", ".join(f"{_person(c.actor)} ({c.to_status})" for c in acted)]


def refund_changes_message(*, refund: RefundRequest, changes: Sequence[RefundLog]) -> dict:
    """A readable Block Kit message: who, what, how much, and a link to the refund. Changes made
    together (one transaction's, in order) read as one: the headline says where the refund is
    now, the trail shows the way; an alert on the way (needs attention, failed) comes first."""
    last = changes[-1]
    headline = _HEADLINES.get(last.to_status, f"Refund {last.to_status}")
    link = settings.SITE_URL + reverse("admin:refunds_refundrequest_change", args=[refund.pk])
    esc = slack_escape
    passed = [c for c in changes[:-1] if c.to_status in ALERT_STATUSES]
    lines = [f"{_HEADLINES[c.to_status]} on the way: {esc(c.message[:200])}" for c in passed]
    lines += [
        f"*{refund.amount_display}* on `{esc(refund.connector_transaction_id)}` ({esc(refund.provider)})",
        f"Requested by {_person(refund.requested_by)}" + (f" · {esc(refund.product)}" if refund.product else ""),
    ]
    if refund.reason:
        lines.append(f"Reason: {esc(refund.reason[:200])}")
    lines += _by(refund, changes)
    if refund.error_code:
        lines.append(f"Error `{esc(refund.error_code)}`: {esc(refund.error_message[:200])}")
    transition = _trail(changes)
    merchant_refund_id = esc(refund.merchant_refund_id)
    text = f"{headline}: {merchant_refund_id} {refund.amount_display} ({transition})"
    text += "".join(f" · {_HEADLINES[c.to_status]} on the way" for c in passed)
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|{merchant_refund_id}> · {transition}"}],
            },
        ],
    }


def slack_enabled() -> bool:
    """Messages go somewhere: to Slack, or (the demo, SLACK_LOG_MESSAGES) to the worker's log."""
    return bool(settings.SLACK_WEBHOOK_URL or settings.SLACK_LOG_MESSAGES)


def slack_post(payload: dict) -> None:
    url = settings.SLACK_WEBHOOK_URL
    if not url:
        if settings.SLACK_LOG_MESSAGES:
            logger.info("Slack message (no SLACK_WEBHOOK_URL, logged instead): %s", payload.get("text", ""))
        return
    response = requests.post(url, json=payload, timeout=settings.SLACK_TIMEOUT_SECONDS)
    response.raise_for_status()


_CHANGES = (RefundLog.Event.REQUESTED, RefundLog.Event.STATUS_CHANGED)


def refund_changes_notify(*, refund_id: int, log_ids: list[int]) -> None:
    """Post one message for the refund's status changes recorded as `log_ids`."""
    if not slack_enabled():
        return
    refund = RefundRequest.objects.select_related("requested_by").filter(pk=refund_id).first()
    if refund is None:
        return
    # Only changes that were committed: a savepoint rolled back took its log rows with it.
    changes = list(
        refund.logs.filter(pk__in=log_ids, event__in=_CHANGES).select_related("actor").order_by("pk")
    )
    if changes:
        slack_post(refund_changes_message(refund=refund, changes=changes))


def refund_status_notify(*, refund_id: int, from_status: str, to_status: str, actor_id: int | None) -> None:
    """A message queued before changes were gathered (by the release before): one change."""
    if not slack_enabled():
        return
    refund = RefundRequest.objects.select_related("requested_by").filter(pk=refund_id).first()
    if refund is None:
        return
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    change = RefundLog(refund=refund, from_status=from_status, to_status=to_status, actor=actor)
    slack_post(refund_changes_message(refund=refund, changes=[change]))
