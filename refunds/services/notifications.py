"""Slack messages about refunds (incoming webhook, Block Kit). Best effort by design: a slow or
absent Slack never holds up a refund; the notification task retries a few times, then gives up."""

import logging

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from refunds.models import RefundRequest, RefundStatus

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


def refund_status_message(*, refund: RefundRequest, from_status: str, to_status: str, actor=None) -> dict:
    """A readable Block Kit message: who, what, how much, and a link to the refund."""
    headline = _HEADLINES.get(to_status, f"Refund {to_status}")
    link = settings.SITE_URL + reverse("admin:refunds_refundrequest_change", args=[refund.pk])
    esc = slack_escape
    lines = [
        f"*{refund.amount_display}* on `{esc(refund.connector_transaction_id)}` ({esc(refund.provider)})",
        f"Requested by {_person(refund.requested_by)}" + (f" · {esc(refund.product)}" if refund.product else ""),
    ]
    if refund.reason:
        lines.append(f"Reason: {esc(refund.reason[:200])}")
    if actor is not None and actor.pk != refund.requested_by_id:
        lines.append(f"By {_person(actor)}")
    if refund.error_code:
        lines.append(f"Error `{esc(refund.error_code)}`: {esc(refund.error_message[:200])}")
    transition = f"{from_status or 'new'} → {to_status}"
    merchant_refund_id = esc(refund.merchant_refund_id)
    text = f"{headline}: {merchant_refund_id} {refund.amount_display} ({transition})"
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


def refund_status_notify(*, refund_id: int, from_status: str, to_status: str, actor_id: int | None) -> None:
    if not slack_enabled():
        return
    refund = RefundRequest.objects.select_related("requested_by").filter(pk=refund_id).first()
    if refund is None:
        return
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    slack_post(refund_status_message(refund=refund, from_status=from_status, to_status=to_status, actor=actor))
