"""refund_transition(locked=...): the move written in the transaction of the caller that locked
the row, without a savepoint of its own (refunds/services/transitions.py)."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

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
    with pytest.raises(RuntimeError, match=r"^refund_transition\(locked=\.\.\.\) needs the transaction that locked the row$"):
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


def test_the_callers_expectation_and_corrections_hold_on_a_locked_row():
    """`expected_from` refuses a move the table allows when the row is not where the caller
    thought; `allow_correction` admits the provider's correction (succeeded → failed) that the
    table alone refuses."""
    refund = RefundFactory(status=RefundStatus.APPROVED)
    with transaction.atomic():
        row = locked(refund.pk)
        with pytest.raises(errors.InvalidTransition, match="is approved, not pending_approval"):
            transitions.refund_transition(refund_id=refund.pk, locked=row, to_status=RefundStatus.CANCELED,
                                          expected_from={RefundStatus.PENDING_APPROVAL})
    done = RefundFactory(status=RefundStatus.SUCCEEDED)
    with transaction.atomic():
        row = locked(done.pk)
        with pytest.raises(errors.InvalidTransition):
            transitions.refund_transition(refund_id=done.pk, locked=row, to_status=RefundStatus.FAILED)
        transitions.refund_transition(refund_id=done.pk, locked=row, to_status=RefundStatus.FAILED, allow_correction=True)

    refund.refresh_from_db()
    done.refresh_from_db()
    assert (refund.status, done.status) == (RefundStatus.APPROVED, RefundStatus.FAILED)


def test_a_move_on_a_locked_row_is_two_statements_and_no_savepoint():
    """The row's UPDATE and the log rows' one INSERT, in the caller's transaction: nothing else
    (the hot path's statement count, bench/README.md)."""
    refund = RefundFactory(status=RefundStatus.APPROVED)
    with transaction.atomic():
        row = locked(refund.pk)
        with CaptureQueriesContext(connection) as queries:
            transitions.refund_transition(refund_id=refund.pk, locked=row, to_status=RefundStatus.PROCESSING,
                                          actor=refund.requested_by, message="claimed", data={"attempt": 1})

    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE", "INSERT"]
    log = refund.logs.get()
    assert (log.actor, log.message, log.data) == (refund.requested_by, "claimed", {"attempt": 1})
