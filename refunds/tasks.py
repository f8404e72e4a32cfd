"""Celery tasks: thin. Each takes ids, calls one service."""

import datetime
import logging

import requests
from celery import shared_task

from refunds.models import RefundRequest
from refunds.providers import UnknownProvider
from refunds.providers.base import TransientProviderError
from refunds.reports import calendar, morning, sales
from refunds.reports.exports import jobs as export_jobs
from refunds.services import batch_runs, dispatch, execution, notifications, slack_approvals, slack_reminders, webhooks
from refunds.slack.client import SLACK_ERRORS

logger = logging.getLogger(__name__)


# once_at_end: what refunds.publish.enqueue_once_on_commit is asked for (the Slack app's message
# sync) goes out once when the task ends: its processing and final status are one sync.
@shared_task(bind=True, acks_late=True, max_retries=None, once_at_end=True)
def refund_submit_task(self, refund_id: int):
    try:
        execution.refund_submit(refund_id=refund_id)
    except RefundRequest.DoesNotExist:
        logger.warning("refund %s vanished before submission", refund_id)
    except TransientProviderError as error:
        # The service counts attempts in the database and has already flagged the refund when
        # they ran out; it raises only when another attempt is due.
        raise self.retry(exc=error, countdown=error.retry_in)


@shared_task(acks_late=True, once_at_end=True)
def refund_sync_status_task(refund_id: int):
    execution.refund_sync_status(refund_id=refund_id)


@shared_task
def refund_dispatch_due_task():
    dispatched = dispatch.refunds_dispatch_due()
    if any(dispatched.values()):
        logger.info("dispatched %s", {k: len(v) for k, v in dispatched.items()})


@shared_task(
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def refund_notify_slack_task(refund_id: int, log_ids: list[int] | str, *queued_by_the_release_before):
    """One Slack message for the status changes `log_ids` (RefundLog rows) of one refund."""
    if queued_by_the_release_before:
        # A message queued before this release: (refund_id, from_status, to_status[, actor_id]).
        to_status, actor_id = (*queued_by_the_release_before, None)[:2]
        notifications.refund_status_notify(
            refund_id=refund_id, from_status=log_ids, to_status=to_status, actor_id=actor_id
        )
        return
    notifications.refund_changes_notify(refund_id=refund_id, log_ids=log_ids)


@shared_task(acks_late=True)
def webhook_event_process_task(event_pk: int):
    # A failure leaves the event unprocessed; the dispatcher offers it again.
    webhooks.webhook_event_process(event_pk=event_pk)


@shared_task(
    autoretry_for=(TransientProviderError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def sales_sync_task(provider: str = "", start: str | None = None, end: str | None = None):
    """Sync the provider's payments of [start, end] (ISO dates; default: yesterday in the
    business zone) into Sale rows; no provider named: the default one that lists payments.
    Idempotent: the beat runs it often."""
    yesterday = calendar.business_yesterday()
    try:
        result = sales.sales_sync(
            provider=provider,
            start=datetime.date.fromisoformat(start) if start else yesterday,
            end=datetime.date.fromisoformat(end) if end else yesterday,
        )
    except (UnknownProvider, sales.SalesSyncUnavailable):
        logger.info("sales sync skipped: %s is not enabled or lists no payments", provider or "no provider")
        return None
    return {"created": result.created, "updated": result.updated}


@shared_task
def summary_send_due_task():
    # A failed send stays claimed without sent_at and is taken up again by a later tick.
    delivery = morning.summary_send_due()
    if delivery is not None:
        logger.info("morning summary for %s: %s", delivery.day, "sent" if delivery.sent_at else delivery.error)


@shared_task(acks_late=True)
def export_job_run_task(job_id: int):
    export_jobs.export_job_run(job_id=job_id)


@shared_task
def export_jobs_sweep_task():
    swept = export_jobs.export_jobs_sweep()
    if any(swept.values()):
        logger.info("export jobs sent again: %s", swept)


@shared_task(acks_late=True)
def refund_batch_run_task(batch_id: int):
    batch_runs.refund_batch_run(batch_id=batch_id)


@shared_task
def refund_batches_sweep_task():
    swept = batch_runs.refund_batches_sweep()
    if swept:
        logger.info("refund batches sent again: %s", swept)


@shared_task(autoretry_for=SLACK_ERRORS, retry_backoff=True, retry_jitter=True, max_retries=8)
def slack_approval_message_sync_task(refund_id: int):
    slack_approvals.approval_message_sync(refund_id=refund_id)


@shared_task
def slack_reminders_send_due_task():
    """Reminders past their threshold (each claimed once in the database), approval messages
    Slack has not accepted yet offered to the sync task again, old replay records dropped."""
    sent = slack_reminders.slack_reminders_send_due()
    for refund_id in slack_approvals.approval_messages_missing():
        slack_approval_message_sync_task.delay(refund_id)
    slack_approvals.slack_interactions_prune()
    if sent:
        logger.info("Slack reminders sent: %s", sent)
