"""The one door: the only creator of refund rows and the only writer of their status.

Each change locks the row, checks the transition table, saves with `update_fields`, appends a
RefundLog row and announces `refund_status_changed` (receivers only schedule work on commit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from refunds import errors
from refunds.models import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    PROVIDER_CORRECTIONS,
    RefundLog,
    RefundRequest,
    RefundStatus,
)
from refunds.redaction import redact
from refunds.rows import get_locked, insert_all, update
from refunds.signals import refund_status_changed


def refund_log_row(*, event: str, message: str = "", actor=None, data=None, **kw) -> RefundLog:
    """A log row, not saved yet: the message redacted and cut to its column."""
    return RefundLog(event=event, message=redact(message)[:1000], actor=actor, data=data or {}, **kw)


def refund_log_append(*, refund: RefundRequest, event: str, message: str = "", actor=None, data=None):
    row = refund_log_row(refund=refund, event=event, message=message, actor=actor, data=data)
    row.save(force_insert=True)
    return row


@dataclass(frozen=True)
class Onward:
    """A transition a refund makes as it is created (intake's auto-approval): the row is inserted
    at `to_status` with `fields`, its log holds the creation and then this transition (as
    refund_transition writes it), and both are announced, in that order. `between(refund)` runs
    between the two announcements, where the caller would have acted before transitioning (the
    approval's row)."""

    to_status: str
    message: str = ""
    actor: object = None
    fields: dict = field(default_factory=dict)
    between: Callable[[RefundRequest], object] | None = None


def refund_create(
    *, status: str, actor=None, message: str, data: dict | None = None, announce: bool = True,
    notes: Sequence[RefundLog] = (), onward: Onward | None = None, **fields,
) -> RefundRequest:
    """Create a refund row at `status` with its first log entry, inside the caller's transaction.
    `announce` sends refund_status_changed ("" → status); refunds recorded from the provider's
    side (made elsewhere) are not announced. `notes`: log rows (refund_log_row) that follow the
    first; `onward`: see Onward. All the log rows are one INSERT."""
    fields["status"] = status
    now = timezone.now()
    if onward is not None:
        if onward.to_status not in ALLOWED_TRANSITIONS.get(status, set()):
            raise errors.InvalidTransition(f"A new refund cannot go from {status} to {onward.to_status}.")
        fields = {**fields, **_transition_fields(onward.to_status, dict(onward.fields), now), "status": onward.to_status}
    refund = RefundRequest.objects.create(**fields)
    rows = [refund_log_row(event=RefundLog.Event.REQUESTED, to_status=status, actor=actor, message=message, data=data)]
    rows += notes
    if onward is not None:
        rows.append(refund_log_row(
            event=RefundLog.Event.STATUS_CHANGED, from_status=status, to_status=onward.to_status, actor=onward.actor,
            message=onward.message,
        ))
    for row in rows:
        row.refund = refund
    insert_all(RefundLog, rows)
    if announce:
        refund_status_changed.send(
            sender=RefundRequest, refund=refund, from_status="", to_status=status, actor=actor, log=rows[0]
        )
    if onward is not None:
        if onward.between is not None:
            onward.between(refund)
        refund_status_changed.send(
            sender=RefundRequest, refund=refund, from_status=status, to_status=onward.to_status, actor=onward.actor,
            log=rows[-1],
        )
    return refund


def _transition_fields(to_status: str, fields: dict, now) -> dict:
    """The fields a move to `to_status` clears or stamps, unless the caller gives them."""
    if to_status in FINAL_STATUSES or to_status == RefundStatus.NEEDS_ATTENTION:
        fields.setdefault("call_started_at", None)
    if to_status in FINAL_STATUSES:
        fields.setdefault("resolved_at", now)
        fields.setdefault("next_action_at", None)
    return fields


def refund_transition(
    *,
    refund_id: int,
    to_status: str,
    actor=None,
    message: str = "",
    data: dict | None = None,
    expected_from: set[str] | None = None,
    allow_correction: bool = False,
    locked: RefundRequest | None = None,
    logs_before: Sequence[RefundLog] = (),
    logs_after: Sequence[RefundLog] = (),
    **fields,
) -> RefundRequest:
    """Move one refund to `to_status`, or raise InvalidTransition. `fields` are saved with it.
    `allow_correction` admits the provider's corrections (PROVIDER_CORRECTIONS) too. `locked`:
    the refund's row as the caller read it with `select_for_update` in the transaction it still
    holds open, so it is current and need not be locked and read again, and the change is
    written in that transaction without a savepoint of its own (a refused move raises before
    anything is written). `logs_before`/`logs_after`: the caller's own log rows
    (refund_log_row), inserted around the transition's row in one statement."""
    if locked is not None and locked.pk == refund_id:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("refund_transition(locked=...) needs the transaction that locked the row")
        _check(locked, to_status, expected_from=expected_from, allow_correction=allow_correction)
        with transaction.atomic(savepoint=False):
            return _apply(locked, to_status, actor, message, data, [*logs_before], [*logs_after], fields)
    with transaction.atomic():
        refund = get_locked(RefundRequest, refund_id)  # select_for_update().get() by hand (refunds.rows)
        _check(refund, to_status, expected_from=expected_from, allow_correction=allow_correction)
        return _apply(refund, to_status, actor, message, data, [*logs_before], [*logs_after], fields)


def _check(refund: RefundRequest, to_status: str, *, expected_from: set[str] | None, allow_correction: bool) -> None:
    from_status = refund.status
    if expected_from is not None and from_status not in expected_from:
        raise errors.InvalidTransition(f"Refund {refund} is {from_status}, not {'/'.join(sorted(expected_from))}.")
    allowed = ALLOWED_TRANSITIONS.get(from_status, set())
    if allow_correction:
        allowed = allowed | PROVIDER_CORRECTIONS.get(from_status, set())
    if to_status not in allowed:
        raise errors.InvalidTransition(f"Refund {refund} cannot go from {from_status} to {to_status}.")


def _apply(refund, to_status, actor, message, data, logs_before, logs_after, fields) -> RefundRequest:
    """Write a checked move of a locked row: the row, the log rows (one INSERT), the signal."""
    from_status = refund.status
    refund.status = to_status
    _transition_fields(to_status, fields, timezone.now())
    for name, value in fields.items():
        setattr(refund, name, value)
    update(refund, ["status", "updated_at", *fields])
    own = refund_log_row(
        refund=refund,
        event=RefundLog.Event.STATUS_CHANGED,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        message=message,
        data=data,
    )
    insert_all(RefundLog, [*logs_before, own, *logs_after])
    refund_status_changed.send(
        sender=RefundRequest, refund=refund, from_status=from_status, to_status=to_status, actor=actor, log=own
    )
    return refund


def refund_flag_for_attention(*, refund_id: int, message: str, code: str = "") -> RefundRequest | None:
    """Hand a refund to a person (needs_attention); None when it has moved on meanwhile."""
    try:
        return refund_transition(
            refund_id=refund_id,
            to_status=RefundStatus.NEEDS_ATTENTION,
            message=message,
            error_code=code[:64],
            error_message=message[:500],
            next_action_at=None,
        )
    except errors.InvalidTransition:
        return None  # it moved on (e.g. a webhook finalised it): nothing to flag
