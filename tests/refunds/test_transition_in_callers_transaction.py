"""refund_transition(locked=...): the move written in the transaction of the caller that locked
the row, without a savepoint of its own (refunds/services/transitions.py)."""

import pytest
from django.db import transaction

from refunds import errors
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.services import transitions
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db(transaction=True)


def locked(refund_id: int) -> RefundRequest:
    return RefundRequest.objects.select_for_update(of=("self",)).get(pk=refund_id)


def test_a_refused_move_leaves_the_callers_transaction_usable():
    """Refused before anything is written: the caller catches it, moves the refund another way in
    the same transaction, and both the move and its log row are committed."""
    refund = RefundFactory(status=RefundStatus.APPROVED)
    with transaction.atomic():
        row = locked(refund.pk)
        with pytest.raises(errors.InvalidTransition):
            transitions.refund_transition(refund_id=refund.pk, locked=row, to_status=RefundStatus.SUCCEEDED)
        transitions.refund_transition(refund_id=refund.pk, locked=row, to_status=RefundStatus.PROCESSING, message="claimed")

    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING
    assert list(refund.logs.values_list("from_status", "to_status", "message")) == [("approved", "processing", "claimed")]


def test_a_locked_row_outside_a_transaction_is_refused_and_nothing_is_written():
    refund = RefundFactory(status=RefundStatus.APPROVED)
    with pytest.raises(RuntimeError, match="needs the transaction that locked the row"):
        transitions.refund_transition(refund_id=refund.pk, locked=refund, to_status=RefundStatus.PROCESSING)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.APPROVED and not refund.logs.exists()


def test_the_callers_log_rows_go_in_around_the_moves_own_in_order():
    refund = RefundFactory(status=RefundStatus.APPROVED)
    with transaction.atomic():
        row = locked(refund.pk)
        before = transitions.refund_log_row(refund=row, event=RefundLog.Event.NOTE, message="before the move")
        after = transitions.refund_log_row(refund=row, event=RefundLog.Event.PROVIDER_CALL, message="after the move")
        transitions.refund_transition(refund_id=refund.pk, locked=row, to_status=RefundStatus.PROCESSING,
                                      logs_before=[before], logs_after=[after])

    assert list(refund.logs.order_by("id").values_list("event", "message")) == [
        ("note", "before the move"), ("status_changed", ""), ("provider_call", "after the move"),
    ]
