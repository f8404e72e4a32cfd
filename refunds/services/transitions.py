"""The one door: the only creator of refund rows and the only writer of their status.

Each change locks the row, checks the transition table, saves with `update_fields`, appends a
RefundLog row and announces `refund_status_changed` (receivers only schedule work on commit).
"""

from __future__ import annotations

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
from refunds.signals import refund_status_changed


def refund_log_append(*, refund: RefundRequest, event: str, message: str = "", actor=None, data=None, **kw):
    return RefundLog.objects.create(
        refund=refund, event=event, message=redact(message)[:1000], actor=actor, data=data or {}, **kw
    )


def refund_create(*, actor=None, message: str, data: dict | None = None, announce: bool = True, **fields) -> RefundRequest:
    """Create a refund row with its first log entry, inside the caller's transaction.
    `announce` sends refund_status_changed ("" → status); refunds recorded from the provider's
    side (made elsewhere) are not announced."""
    refund = RefundRequest.objects.create(**fields)
    log = refund_log_append(
        refund=refund, event=RefundLog.Event.REQUESTED, to_status=refund.status, actor=actor, message=message, data=data
    )
    if announce:
        refund_status_changed.send(
            sender=RefundRequest, refund=refund, from_status="", to_status=refund.status, actor=actor, log=log
        )
    return refund


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
    **fields,
) -> RefundRequest:
    """Move one refund to `to_status`, or raise InvalidTransition. `fields` are saved with it.
    `allow_correction` admits the provider's corrections (PROVIDER_CORRECTIONS) too. `locked`:
    the refund's row as the caller read it with `select_for_update` in the transaction it still
    holds open, so it is current and need not be locked and read again (one statement fewer)."""
    now = timezone.now()
    with transaction.atomic():
        if locked is not None and locked.pk == refund_id:
            refund = locked
        else:
            refund = RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)
        from_status = refund.status
        if expected_from is not None and from_status not in expected_from:
            raise errors.InvalidTransition(f"Refund {refund} is {from_status}, not {'/'.join(sorted(expected_from))}.")
        allowed = ALLOWED_TRANSITIONS.get(from_status, set())
        if allow_correction:
            allowed = allowed | PROVIDER_CORRECTIONS.get(from_status, set())
        if to_status not in allowed:
            raise errors.InvalidTransition(f"Refund {refund} cannot go from {from_status} to {to_status}.")
        refund.status = to_status
        if to_status in FINAL_STATUSES or to_status == RefundStatus.NEEDS_ATTENTION:
            fields.setdefault("call_started_at", None)
        if to_status in FINAL_STATUSES:
            fields.setdefault("resolved_at", now)
            fields.setdefault("next_action_at", None)
        for name, value in fields.items():
            setattr(refund, name, value)
        refund.save(update_fields=["status", "updated_at", *fields])
        log = refund_log_append(
            refund=refund,
            event=RefundLog.Event.STATUS_CHANGED,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            message=message,
            data=data,
        )
        refund_status_changed.send(
            sender=RefundRequest, refund=refund, from_status=from_status, to_status=to_status, actor=actor, log=log
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
