"""Publish Celery tasks by name, after the current transaction commits.

Services and signal receivers enqueue work through here and never import `refunds.tasks`:
tasks import services, so the reverse import would close a circle. The name is the task's
function name in `refunds.tasks` (e.g. "refund_submit_task").
"""

from __future__ import annotations

import logging
import threading
import weakref

from celery import signals
from django.db import transaction

from refundoffice.celery import app

logger = logging.getLogger(__name__)

TASKS_MODULE = "refunds.tasks"


def task_by_name(name: str):
    """The registered task object (the same one `refunds.tasks` defines)."""
    return app.tasks[f"{TASKS_MODULE}.{name}"]


def _publish(task_name: str, args: tuple) -> None:
    """A broker outage is logged, never raised: the database says what work is due and the
    dispatcher re-enqueues it (a Slack notification lost there is lost, as it always was)."""
    try:
        task_by_name(task_name).apply_async(args=args, retry=False)
    except Exception:  # noqa: BLE001 - any broker failure; the sweeper recovers
        logger.warning("could not enqueue %s%r; the dispatcher will pick it up", task_name, args, exc_info=True)


def enqueue_on_commit(task_name: str, *args) -> None:
    """Publish after commit (see _publish for a broker outage)."""
    transaction.on_commit(lambda: _publish(task_name, args), robust=True)


class _Gathered:
    """The items one transaction gave for one (task, key), published as one message by the
    first of their on-commit callbacks to run (each item registers one, so Django's own rules
    decide what survives: a rolled-back savepoint discards its callbacks, a rolled-back
    transaction all of them). Only those callbacks hold it: once its transaction is over it is
    gone from `_open`, and the next transaction gathers anew."""

    def __init__(self, task_name: str, key, *, with_items: bool):
        self.task_name, self.key = task_name, key
        self.items: list | None = [] if with_items else None
        self.published = False

    def publish(self) -> None:
        if self.published:
            return
        self.published = True
        if self.items is None and _held():
            _held()[-1][1][(self.task_name, self.key)] = None  # at the task's end, once
        else:
            _publish(self.task_name, (self.key,) if self.items is None else (self.key, self.items))


_open = threading.local()  # per thread, as Django's connections (and their on-commit lists) are


def _held() -> list[tuple[str, dict]]:
    """(task id, {(task name, key): None}) per holding task running in this thread, innermost last."""
    if not hasattr(_open, "held"):
        _open.held = []
    return _open.held


@signals.task_prerun.connect(dispatch_uid="refunds.publish.hold_during_task")
def _hold_during_task(task_id=None, task=None, **kwargs):
    # Only tasks that say so (`once_at_end=True`): short ones about one refund. A long task (a
    # batch's filing) would hold every waiting refund's approval message until it ends.
    if getattr(task, "once_at_end", False):
        _held().append((task_id, {}))


@signals.task_postrun.connect(dispatch_uid="refunds.publish.release_after_task")
def _release_after_task(task_id=None, **kwargs):
    # Sent however the task ended (success, error, retry), before a late ack.
    held = _held()
    ids = [held_id for held_id, _ in held]
    if task_id not in ids:
        return
    start = len(ids) - 1 - ids[::-1].index(task_id)
    release = {pair: None for _, pairs in held[start:] for pair in pairs}
    del held[start:]
    for task_name, key in release:
        _publish(task_name, (key,))


def _gathered(task_name: str, key, *, with_items: bool) -> _Gathered:
    """This transaction's _Gathered for (task, key), registering one more on-commit callback."""
    gathering = getattr(_open, "gathering", None)
    if gathering is None:
        gathering = _open.gathering = weakref.WeakValueDictionary()
    gathered = gathering.get((task_name, key))
    if gathered is None or gathered.published:
        gathered = gathering[(task_name, key)] = _Gathered(task_name, key, with_items=with_items)
    transaction.on_commit(gathered.publish, robust=True)
    return gathered


def enqueue_gathered_on_commit(task_name: str, key, item) -> None:
    """Publish `task_name(key, [item, ...])` once after commit, with every item given for `key`
    in this transaction, in order. An item given inside a savepoint that is rolled back can still
    be in the list (another item's callback publishes it): the task must check each item against
    the database, e.g. by loading the rows the items name."""
    _gathered(task_name, key, with_items=True).items.append(item)


def enqueue_once_on_commit(task_name: str, key) -> None:
    """Publish `task_name(key)` once after commit, however often this transaction asks: for a
    task that makes something match what is current (e.g. a Slack message kept true). Inside a
    Celery task declared with `once_at_end=True`, once when that task ends, however many of its
    transactions asked: what is current then is what the message must show (a worker that dies
    first leaves it as it was until the next commit that asks)."""
    _gathered(task_name, key, with_items=False)
