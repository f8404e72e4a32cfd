import os

from celery import Celery, signals
from django.conf import settings
from django.core import checks
from django.core.management.base import SystemCheckError
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refundoffice.settings")

app = Celery("refundoffice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule_periodic_tasks(sender, **kwargs):
    # The schedule lives in code; due work lives in the database, so a lost beat tick or a
    # lost message only delays work until the next tick. Every task here is idempotent:
    # - the dispatcher submits, polls and sweeps refunds that are due;
    # - yesterday's sales are upserted again each hour (late payments included);
    # - the morning summary is claimed once per day once REPORTS_SUMMARY_SEND_AT has passed;
    # - export jobs whose message was lost or whose worker died are sent again (the job's
    #   claim makes a duplicate harmless).
    schedule = [
        (settings.REFUND_POLL_EVERY_SECONDS, "refund_dispatch_due_task", "dispatch due refunds (submit, poll, sweep)"),
        (3600.0, "sales_sync_task", "sync yesterday's sales from Stripe"),
        (120.0, "summary_send_due_task", "send the morning summary to Slack when due"),
        (30.0, "export_jobs_sweep_task", "resend lost or stale export jobs"),
        (30.0, "refund_batches_sweep_task", "resend refund batches whose message or worker was lost"),
        (60.0, "slack_reminders_send_due_task", "Slack: reminders of refunds waiting for approval, unsent messages"),
    ]
    for every, task, name in schedule:
        sender.add_periodic_task(every, sender.signature(f"refunds.tasks.{task}"), name=name)


@signals.worker_init.connect
def _refuse_to_start_misconfigured(**kwargs):
    """Workers run Django's system checks too: a provider enabled without its credentials
    (e.g. no ROBOKASSA_PASSWORD3) stops the worker at start, not a refund mid-flight."""
    errors = [m for m in checks.run_checks() if m.level >= checks.ERROR]
    if errors:
        # SystemExit, not an exception: Celery logs and swallows exceptions from signal handlers.
        raise SystemExit(str(SystemCheckError("\n".join(str(error) for error in errors))))


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(task=None, **kwargs):
    """With connections kept across tasks (CELERY_DB_REUSE_MAX), drop ones past CONN_MAX_AGE
    or broken, as Django does around each web request. Only in a worker: a task applied
    eagerly runs inside its caller's transaction."""
    if task is not None and task.request.is_eager:
        return
    close_old_connections()
