"""Publish Celery tasks by name, after the current transaction commits.

Services and signal receivers enqueue work through here and never import `refunds.tasks`:
tasks import services, so the reverse import would close a circle. The name is the task's
function name in `refunds.tasks` (e.g. "refund_submit_task").
"""

from __future__ import annotations

import logging

from django.db import transaction

from refundoffice.celery import app

logger = logging.getLogger(__name__)

TASKS_MODULE = "refunds.tasks"


def task_by_name(name: str):
    """The registered task object (the same one `refunds.tasks` defines)."""
    return app.tasks[f"{TASKS_MODULE}.{name}"]


def enqueue_on_commit(task_name: str, *args) -> None:
    """Publish after commit; a broker outage is logged, never raised: the database says what is
    due and the dispatcher re-enqueues it."""

    def publish():
        try:
            task_by_name(task_name).apply_async(args=args, retry=False)
        except Exception:  # noqa: BLE001 - any broker failure; the sweeper recovers
            logger.warning("could not enqueue %s%r; the dispatcher will pick it up", task_name, args, exc_info=True)

    transaction.on_commit(publish, robust=True)
