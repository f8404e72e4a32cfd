"""Reminders before a refund goes stale: for each threshold in SLACK_REMINDER_HOURS, one message
per refund still awaiting approval, to the approvals channel, mentioning the linked approvers whose
limit covers it. The SlackReminder row (unique per refund and threshold) is the claim, so any
number of beats and workers send each reminder once; a send that failed is claimed again later."""

import datetime
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from approvals.policy import approver_limit
from refunds.models import RefundRequest, RefundStatus, SlackIdentity, SlackReminder
from refunds.slack import messages
from refunds.slack.client import SLACK_ERRORS, slack_app_enabled, web_client

logger = logging.getLogger(__name__)

# A claim whose send neither succeeded nor recorded a failure for this long is taken again
# (the worker died mid-send).
RECLAIM_AFTER = datetime.timedelta(minutes=5)
BATCH = 100


def reminder_thresholds() -> list[int]:
    """Configured thresholds in minutes, smallest first."""
    return sorted({round(hours * 60) for hours in settings.SLACK_REMINDER_HOURS if hours > 0})


def refunds_past_threshold(now=None) -> QuerySet[RefundRequest]:
    """Refunds awaiting approval longer than the first reminder threshold, longest-waiting first."""
    thresholds = reminder_thresholds()
    if not thresholds:
        return RefundRequest.objects.none()
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(minutes=thresholds[0])
    return (
        RefundRequest.objects.filter(status=RefundStatus.PENDING_APPROVAL, created_at__lte=cutoff)
        .select_related("requested_by")
        .order_by("created_at", "id")
    )


def covering_approvers(refund: RefundRequest) -> list[str]:
    """Slack ids of linked approvers (not the requester) whose limit covers the refund."""
    ids = []
    for identity in SlackIdentity.objects.select_related("user").filter(user__is_active=True).order_by("id"):
        user = identity.user
        if user.pk == refund.requested_by_id or not user.has_perm("refunds.approve_refundrequest"):
            continue
        if approver_limit(user, refund.currency) >= refund.amount_minor:
            ids.append(identity.slack_user_id)
    return ids


def _claim(*, refund_id: int, minutes: int, now) -> SlackReminder | None:
    try:
        with transaction.atomic():
            return SlackReminder.objects.create(refund_id=refund_id, threshold_minutes=minutes, claimed_at=now)
    except IntegrityError:
        return None  # someone else has it


def _reclaim(reminder: SlackReminder, now) -> bool:
    taken = SlackReminder.objects.filter(pk=reminder.pk, sent_at=None, claimed_at=reminder.claimed_at).update(
        claimed_at=now
    )
    return taken == 1


def _send(reminder: SlackReminder, minutes: int) -> bool:
    refund = RefundRequest.objects.get(pk=reminder.refund_id)
    if refund.status != RefundStatus.PENDING_APPROVAL:
        SlackReminder.objects.filter(pk=reminder.pk).update(error="decided before the reminder went out")
        return False
    payload = messages.reminder_message(refund=refund, hours=minutes / 60, mentions=covering_approvers(refund))
    try:
        web_client().chat_postMessage(channel=settings.SLACK_APPROVALS_CHANNEL, **payload)
    except SLACK_ERRORS as error:
        logger.warning("Slack reminder for %s failed: %s", refund, error)
        # Left unsent; the claim's time is moved back so the next tick after RECLAIM_AFTER retries.
        SlackReminder.objects.filter(pk=reminder.pk).update(error=str(error)[:200])
        return False
    SlackReminder.objects.filter(pk=reminder.pk).update(sent_at=timezone.now(), error="")
    return True


def slack_reminders_send_due(now=None) -> int:
    """Send every reminder that is due and not yet sent; returns how many were sent."""
    if not slack_app_enabled():
        return 0
    now = now or timezone.now()
    sent = 0
    for minutes in reminder_thresholds():
        cutoff = now - datetime.timedelta(minutes=minutes)
        due = (
            RefundRequest.objects.filter(status=RefundStatus.PENDING_APPROVAL, created_at__lte=cutoff)
            .exclude(slack_reminders__threshold_minutes=minutes)
            .order_by("created_at")
            .values_list("pk", flat=True)[:BATCH]
        )
        for refund_id in list(due):
            reminder = _claim(refund_id=refund_id, minutes=minutes, now=now)
            if reminder is not None:
                sent += _send(reminder, minutes)
        stale = SlackReminder.objects.filter(
            threshold_minutes=minutes, sent_at=None, claimed_at__lte=now - RECLAIM_AFTER,
            refund__status=RefundStatus.PENDING_APPROVAL,
        )[:BATCH]
        for reminder in list(stale):
            if _reclaim(reminder, now):
                sent += _send(reminder, minutes)
    return sent
