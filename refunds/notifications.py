"""Slack messages about refunds (incoming webhook, Block Kit). Best effort by design: a slow or
absent Slack never holds up a refund; the notification task retries a few times, then gives up."""

import datetime
import logging

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from refunds.models import RefundRequest, RefundStatus, SummaryDelivery

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


def _person(user) -> str:
    if user is None:
        return "Refund Office"
    return user.get_full_name() or user.get_username()


def refund_status_message(*, refund: RefundRequest, from_status: str, to_status: str, actor=None) -> dict:
    """A readable Block Kit message: who, what, how much, and a link to the refund."""
    headline = _HEADLINES.get(to_status, f"Refund {to_status}")
    link = settings.SITE_URL + reverse("admin:refunds_refundrequest_change", args=[refund.pk])
    lines = [
        f"*{refund.amount_display}* on `{refund.connector_transaction_id}` ({refund.provider})",
        f"Requested by {_person(refund.requested_by)}" + (f" · {refund.product}" if refund.product else ""),
    ]
    if refund.reason:
        lines.append(f"Reason: {refund.reason[:200]}")
    if actor is not None and actor.pk != refund.requested_by_id:
        lines.append(f"By {_person(actor)}")
    if refund.error_code:
        lines.append(f"Error `{refund.error_code}`: {refund.error_message[:200]}")
    transition = f"{from_status or 'new'} → {to_status}"
    text = f"{headline}: {refund.merchant_refund_id} {refund.amount_display} ({transition})"
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|{refund.merchant_refund_id}> · {transition}"}],
            },
        ],
    }


def slack_post(payload: dict) -> None:
    url = settings.SLACK_WEBHOOK_URL
    if not url:
        return
    response = requests.post(url, json=payload, timeout=settings.SLACK_TIMEOUT_SECONDS)
    response.raise_for_status()


def refund_status_notify(*, refund_id: int, from_status: str, to_status: str, actor_id: int | None) -> None:
    if not settings.SLACK_WEBHOOK_URL:
        return
    refund = RefundRequest.objects.select_related("requested_by").filter(pk=refund_id).first()
    if refund is None:
        return
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    slack_post(refund_status_message(refund=refund, from_status=from_status, to_status=to_status, actor=actor))


# --- the morning summary ------------------------------------------------------------------

# A claim without sent_at older than this is taken to be a sender that died mid-send.
SUMMARY_RECLAIM_AFTER = datetime.timedelta(minutes=5)
SUMMARY_TOP_PRODUCTS = 5


def _percent(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def duration_display(value: datetime.timedelta | None) -> str:
    """1 d 2 h, 3 h 05 min, 4 min 10 s, 12 s; "—" for none."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def summary_message(*, day: datetime.date) -> dict:
    """Yesterday's figures as a Block Kit message, with a link to the summary page."""
    from refunds.money import format_minor
    from refunds.reports import product_refund_rates, refund_summary

    summary = refund_summary(start=day, end=day)
    rates = product_refund_rates(start=day, end=day, limit=SUMMARY_TOP_PRODUCTS)
    link = f"{settings.SITE_URL}{reverse('reports-summary')}?start={day.isoformat()}&end={day.isoformat()}"
    title = f"Refund summary for {day:%a %d %b %Y}"

    if summary.currencies:
        totals = "\n".join(
            f"*{format_minor(c.amount_minor, c.currency)}* in {c.count} refund{'s' if c.count != 1 else ''}: "
            + ", ".join(f"{t.count} {t.status_label.lower()}" for t in c.by_status)
            for c in summary.currencies
        )
    else:
        totals = "No refunds were requested."
    decisions = (
        f"Approval rate: *{_percent(summary.approval_rate)}* "
        f"({summary.approved_count} approved, {summary.rejected_count} rejected)\n"
        f"Auto-approved: *{_percent(summary.auto_approved_share)}* of approvals\n"
        f"Time to resolution: avg *{duration_display(summary.resolution.average)}*, "
        f"p90 *{duration_display(summary.resolution.p90)}* ({summary.resolution.count} resolved)\n"
        f"Time to approval: avg *{duration_display(summary.approval.average)}*, "
        f"p90 *{duration_display(summary.approval.p90)}*"
    )
    fields = [
        {"type": "mrkdwn", "text": f"*Requested*\n{summary.requested_count}"},
        {"type": "mrkdwn", "text": f"*Failed or needing attention*\n{summary.failure_count}"},
    ]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": totals[:2900]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": decisions}},
    ]
    if summary.failures:
        failures = "\n".join(
            f"• {f.provider} `{f.error_code or 'no code'}`: {f.count}" for f in summary.failures[:10]
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Failures by provider code*\n{failures}"}})
    if rates:
        lines = "\n".join(
            f"• {r.product_label} ({r.currency}): {_percent(r.rate_by_amount)} by amount, "
            f"{r.refunded_count} refunded / {r.sold_count} sold"
            for r in rates
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Refund rate by product*\n{lines}"}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<{link}|Open the summary> · days in {summary.time_zone}"}
            ],
        }
    )
    text = f"{title}: {summary.requested_count} requested, approval rate {_percent(summary.approval_rate)}"
    return {"text": text, "blocks": blocks}


def _summary_send_time() -> datetime.time | None:
    value = (settings.REPORTS_SUMMARY_SEND_AT or "").strip()
    if not value:
        return None
    try:
        return datetime.time.fromisoformat(value)
    except ValueError:
        logger.error("REPORTS_SUMMARY_SEND_AT %r is not HH:MM; no summary is sent", value)
        return None


def _summary_claim(*, day: datetime.date, now: datetime.datetime) -> SummaryDelivery | None:
    """Claim `day` for this sender, or None when another has it (or it was sent). The unique
    day makes the insert the lock: however many beats or workers race, one wins."""
    try:
        with transaction.atomic():
            return SummaryDelivery.objects.create(day=day)
    except IntegrityError:
        pass
    # Taken before: take it over only if it failed, or its sender died before recording.
    reclaimable = Q(sent_at__isnull=True) & (~Q(error="") | Q(claimed_at__lt=now - SUMMARY_RECLAIM_AFTER))
    taken = SummaryDelivery.objects.filter(reclaimable, day=day).update(claimed_at=now, error="")
    return SummaryDelivery.objects.get(day=day) if taken else None


def summary_send_due(*, now: datetime.datetime | None = None) -> SummaryDelivery | None:
    """Send yesterday's summary once the business zone's clock has passed
    REPORTS_SUMMARY_SEND_AT; at most once per day after a success. Returns the delivery
    acted on (sent or failed), None when nothing was due."""
    from refunds.reports import business_zone

    send_at = _summary_send_time()
    if send_at is None or not settings.SLACK_WEBHOOK_URL:
        return None
    now = now or timezone.now()
    local = now.astimezone(business_zone())
    if local.time() < send_at:
        return None
    day = local.date() - datetime.timedelta(days=1)
    delivery = _summary_claim(day=day, now=now)
    if delivery is None:
        return None
    try:
        slack_post(summary_message(day=day))
    except requests.RequestException as error:
        delivery.error = f"{error.__class__.__name__}: {error}"[:500]
        delivery.save(update_fields=["error"])
        logger.warning("morning summary for %s not sent: %s", day, delivery.error)
        return delivery
    delivery.sent_at = timezone.now()
    delivery.save(update_fields=["sent_at"])
    return delivery
