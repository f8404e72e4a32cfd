"""The morning Slack summary: yesterday's figures (the daily summary and the top refund rates
by product), posted once a day after REPORTS_SUMMARY_SEND_AT in the business zone. The beat
calls summary_send_due every few minutes; a unique SummaryDelivery per day makes sure one
sender posts it, and a failed post is taken up again by a later tick."""

from __future__ import annotations

import datetime
import logging

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from refunds.models import SummaryDelivery
from refunds.services.notifications import slack_escape, slack_post
from refunds.reports.calendar import business_zone
from refunds.reports.formatting import duration_display, money_display, percent_display
from refunds.reports.summary import RefundSummary, product_refund_rates, refund_summary

logger = logging.getLogger(__name__)

# A claim without sent_at older than this is taken to be a sender that died mid-send.
SUMMARY_RECLAIM_AFTER = datetime.timedelta(minutes=5)
SUMMARY_TOP_PRODUCTS = 5


def summary_message(*, day: datetime.date) -> dict:
    """Yesterday's figures as a Block Kit message, with a link to the summary page."""
    summary = refund_summary(start=day, end=day)
    rates = product_refund_rates(start=day, end=day, limit=SUMMARY_TOP_PRODUCTS)
    link = f"{settings.SITE_URL}{reverse('reports-summary')}?start={day.isoformat()}&end={day.isoformat()}"
    title = f"Refund summary for {day:%a %d %b %Y}"

    totals, decisions = _totals_text(summary), _decisions_text(summary)
    fields = [
        {"type": "mrkdwn", "text": f"*Requested*\n{summary.requested_count}"},
        {"type": "mrkdwn", "text": f"*Failed or needing attention*\n{summary.failure_count}"},
    ]
    if summary.refunded_and_disputed_count:
        fields.append(
            {"type": "mrkdwn", "text": f"*Refunded and disputed (money at risk twice)*\n{summary.refunded_and_disputed_count}"}
        )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": totals[:2900]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": decisions}},
    ]
    if summary.failures:
        failures = "\n".join(
            f"• {slack_escape(f.provider)} `{slack_escape(f.error_code or 'no code')}`: {f.count}"
            for f in summary.failures[:10]
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Failures by provider code*\n{failures}"}})
    if rates:
        lines = "\n".join(
            f"• {slack_escape(r.product_label)} ({slack_escape(r.currency)}): {percent_display(r.rate_by_amount)} by amount, "
            f"{r.refunded_count} refunded / {r.sold_count} sold"
            for r in rates
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Refund rate by product*\n{lines}"}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<{link}|Open the summary> · days in {slack_escape(summary.time_zone)}"}
            ],
        }
    )
    text = f"{title}: {summary.requested_count} requested, approval rate {percent_display(summary.approval_rate)}"
    return {"text": text, "blocks": blocks}


def _totals_text(summary: RefundSummary) -> str:
    if not summary.currencies:
        return "No refunds were requested."
    return "\n".join(
        f"*{money_display(c.amount_minor, c.currency)}* in {c.count} refund{'s' if c.count != 1 else ''}: "
        + ", ".join(f"{t.count} {t.status_label.lower()}" for t in c.by_status)
        for c in summary.currencies
    )


def _decisions_text(summary: RefundSummary) -> str:
    return (
        f"Approval rate: *{percent_display(summary.approval_rate)}* "
        f"({summary.approved_count} approved, {summary.rejected_count} rejected)\n"
        f"Auto-approved: *{percent_display(summary.auto_approved_share)}* of approvals\n"
        f"Time to resolution: avg *{duration_display(summary.resolution.average)}*, "
        f"p90 *{duration_display(summary.resolution.p90)}* ({summary.resolution.count} resolved)\n"
        f"Time to approval: avg *{duration_display(summary.approval.average)}*, "
        f"p90 *{duration_display(summary.approval.p90)}*"
    )


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
