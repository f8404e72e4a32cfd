"""What the Slack app shows: the approval message of a refund (with buttons while it waits), the
reminder, the modals, and the short answers only the clicking person sees. Pure rendering: the
caller loads the rows."""

from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from refunds.models import RefundRequest, RefundStatus
from refunds.money import STORED_TEXT_LOCALE, format_minor
from refunds.services.notifications import slack_escape as esc

APPROVE = "refund_approve"
APPROVE_WITH_COMMENT = "refund_approve_comment"
REJECT = "refund_reject"
REASON_BLOCK = "reason"
COMMENT_BLOCK = "comment"
TEXT_ACTION = "text"

_STATUS_LINES = {
    RefundStatus.APPROVED: ":white_check_mark: Approved; on its way to the provider",
    RefundStatus.PROCESSING: ":arrows_counterclockwise: Sent to the provider",
    RefundStatus.SUCCEEDED: ":moneybag: Refunded: the provider confirmed it",
    RefundStatus.FAILED: ":x: Failed at the provider",
    RefundStatus.REJECTED: ":no_entry: Rejected",
    RefundStatus.CANCELED: ":heavy_multiplication_x: Canceled",
    RefundStatus.NEEDS_ATTENTION: ":rotating_light: Needs attention",
}


@dataclass(frozen=True)
class Context:
    """What a decision needs at a glance, read by the caller."""

    earlier_count: int
    earlier_minor: int
    remaining_minor: int | None
    approvals: list  # Approval rows, oldest first, with .approver loaded


def money(minor: int | None, currency: str) -> str:
    return format_minor(minor, currency, STORED_TEXT_LOCALE) if minor is not None else "unknown"


def person(user) -> str:
    if user is None:
        return "Refund Office"
    return esc(user.get_full_name() or user.get_username())


def admin_link(refund: RefundRequest) -> str:
    return settings.SITE_URL + reverse("admin:refunds_refundrequest_change", args=[refund.pk])


def _details(refund: RefundRequest, ctx: Context) -> str:
    lines = [
        f"*{money(refund.amount_minor, refund.currency)}* on `{esc(refund.connector_transaction_id)}` "
        f"({esc(refund.provider)})",
        f"Requested by {person(refund.requested_by)}" + (f" · {esc(refund.product)}" if refund.product else ""),
        f"Reason: {esc(refund.reason[:300])}" if refund.reason else "Reason: (none given)",
        f"Refundable remainder of the payment: {money(ctx.remaining_minor, refund.currency)}",
        (
            f"Earlier refunds on this payment: {ctx.earlier_count} "
            f"({money(ctx.earlier_minor, refund.currency)})" if ctx.earlier_count else "No earlier refunds on this payment"
        ),
    ]
    return "\n".join(lines)


def _decisions(refund: RefundRequest, ctx: Context) -> list[str]:
    lines = []
    for approval in ctx.approvals:
        comment = f": {esc(approval.comment[:300])}" if approval.comment else ""
        if approval.decision == "rejected":
            lines.append(f":no_entry: Rejected by {person(approval.approver)}{comment}")
        elif approval.decision == "auto_approved":
            lines.append(":robot_face: Auto-approved")
        elif refund.status == RefundStatus.PENDING_APPROVAL:
            lines.append(
                f":ballot_box_with_check: Approved at tier {approval.tier} by {person(approval.approver)} "
                f"(limit {money(approval.limit_minor, refund.currency)}){comment}; needs a higher tier"
            )
        else:
            lines.append(f":white_check_mark: Approved by {person(approval.approver)}{comment}")
    return lines


def approval_message(refund: RefundRequest, ctx: Context) -> dict:
    """chat.postMessage / chat.update arguments (text and blocks): buttons only while it waits."""
    waiting = refund.status == RefundStatus.PENDING_APPROVAL
    tiers = sum(1 for a in ctx.approvals if a.decision == "approved")
    amount = money(refund.amount_minor, refund.currency)
    headline = (
        f"Refund awaiting approval: {amount}" if waiting else f"Refund {refund.get_status_display().lower()}: {amount}"
    )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _details(refund, ctx)}},
    ]
    status_lines = _decisions(refund, ctx)
    if waiting:
        status_lines.append(
            f"Needs: an approver whose limit covers {amount}" + (f" (tier {tiers + 1})" if tiers else "")
        )
    else:
        status_lines.append(f"Status: {_STATUS_LINES.get(refund.status, esc(refund.get_status_display()))}")
        if refund.status in (RefundStatus.FAILED, RefundStatus.NEEDS_ATTENTION) and refund.error_code:
            status_lines.append(f"Error `{esc(refund.error_code)}`: {esc(refund.error_message[:200])}")
    blocks.append({"type": "section", "block_id": "status", "text": {"type": "mrkdwn", "text": "\n".join(status_lines)}})
    if waiting:
        value = str(refund.pk)
        blocks.append({"type": "actions", "block_id": "decision", "elements": [
            {"type": "button", "action_id": APPROVE, "style": "primary", "value": value,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": APPROVE_WITH_COMMENT, "value": value,
             "text": {"type": "plain_text", "text": "Approve with comment…"}},
            {"type": "button", "action_id": REJECT, "style": "danger", "value": value,
             "text": {"type": "plain_text", "text": "Reject…"}},
        ]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"<{admin_link(refund)}|{esc(refund.merchant_refund_id)}> in Refund Office"}
    ]})
    return {"text": f"{headline} ({esc(refund.merchant_refund_id)})", "blocks": blocks}


def decision_modal(*, refund: RefundRequest, reject: bool, channel: str = "", ts: str = "") -> dict:
    """views.open's view: Reject asks for the required reason; Approve for an optional comment."""
    title = "Reject refund" if reject else "Approve refund"
    summary = (f"*{money(refund.amount_minor, refund.currency)}* on `{esc(refund.connector_transaction_id)}` "
               f"({esc(refund.merchant_refund_id)})")
    field = {
        "type": "input",
        "block_id": REASON_BLOCK if reject else COMMENT_BLOCK,
        "optional": not reject,
        "label": {"type": "plain_text", "text": "Reason (the requester sees it)" if reject else "Comment"},
        "element": {"type": "plain_text_input", "action_id": TEXT_ACTION, "multiline": True, "max_length": 1000},
    }
    return {
        "type": "modal",
        "callback_id": REJECT if reject else APPROVE_WITH_COMMENT,
        "private_metadata": f"{refund.pk}",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Reject" if reject else "Approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": summary}}, field],
    }


def reminder_message(*, refund: RefundRequest, hours: float, mentions: list[str]) -> dict:
    amount = money(refund.amount_minor, refund.currency)
    waited = f"{hours:g} hour{'' if hours == 1 else 's'}"
    who = " ".join(f"<@{esc(m)}>" for m in mentions) or "No linked approver's limit covers it."
    text = (f":alarm_clock: {esc(refund.merchant_refund_id)} ({amount}) has waited over {waited} for approval. "
            f"{who} <{admin_link(refund)}|Open in Refund Office>")
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
