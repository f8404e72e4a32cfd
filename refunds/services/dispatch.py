"""The dispatcher: what the database says is due, handed to one task each. The beat runs it
every REFUND_POLL_EVERY_SECONDS; rows another dispatcher holds are skipped, so any number of
beats and workers can run."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from refunds.models import RefundRequest, RefundStatus, WebhookEvent
from refunds.publish import enqueue_on_commit
from refunds.services.execution import poll_delay
from refunds.services.transitions import refund_flag_for_attention


def refunds_dispatch_due(*, limit: int = 500) -> dict[str, list[int]]:
    """Find refunds the database says are due and hand each to one task: approved but never
    submitted (a lost message), submitted without an answer (a crashed worker), or processing
    and due for a status poll. Rows locked by another dispatcher are skipped."""
    now = timezone.now()
    give_up_before = now - timedelta(seconds=settings.REFUND_POLL_GIVE_UP_SECONDS)
    dispatched: dict[str, list[int]] = {"submit": [], "sync": [], "flagged": [], "events": []}
    with transaction.atomic():
        due = list(
            RefundRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status__in=[RefundStatus.APPROVED, RefundStatus.PROCESSING], next_action_at__lte=now)
            .order_by("next_action_at")
            .only("id", "provider", "status", "connector_refund_id", "poll_count", "submitted_at")[:limit]
        )
        for refund in due:
            if refund.status == RefundStatus.PROCESSING and refund.submitted_at and refund.submitted_at < give_up_before:
                dispatched["flagged"].append(refund.pk)
                continue
            if refund.connector_refund_id:
                refund.next_action_at = now + poll_delay(refund.poll_count + 1, refund.provider)
                refund.poll_count += 1
                refund.save(update_fields=["next_action_at", "poll_count"])
                dispatched["sync"].append(refund.pk)
                enqueue_on_commit("refund_sync_status_task", refund.pk)
            else:
                refund.next_action_at = now + timedelta(seconds=settings.REFUND_SUBMIT_LEASE_SECONDS)
                refund.save(update_fields=["next_action_at"])
                dispatched["submit"].append(refund.pk)
                enqueue_on_commit("refund_submit_task", refund.pk)
    dispatched["events"] = _dispatch_stale_events(now=now, limit=limit)
    for refund_id in dispatched["flagged"]:
        refund_flag_for_attention(
            refund_id=refund_id, message="The provider has not reported a final status in time", code="stuck_processing"
        )
    return dispatched


def _dispatch_stale_events(*, now, limit: int) -> list[int]:
    """Webhook events stored but not processed a while after they arrived (a lost message or a
    failed attempt) are offered again, up to a bound."""
    stale = list(
        WebhookEvent.objects.filter(
            processed_at__isnull=True,
            received_at__lte=now - timedelta(seconds=settings.WEBHOOK_RETRY_AFTER_SECONDS),
            attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for event_pk in stale:
        enqueue_on_commit("webhook_event_process_task", event_pk)
    return stale
