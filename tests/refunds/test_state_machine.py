"""The one door: allowed transitions, the log, the signal, the dispatcher."""

from datetime import timedelta

import pytest
from django.utils import timezone

from refunds import errors
from refunds.services import dispatch, execution, transitions
from refunds.models import ALLOWED_TRANSITIONS, FINAL_STATUSES, RefundLog, RefundRequest, RefundStatus
from refunds.signals import refund_status_changed
from tests.factories import PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_final_statuses_have_no_way_out(final):
    refund = RefundFactory(status=final)
    for target in RefundStatus.values:
        with pytest.raises(errors.InvalidTransition):
            transitions.refund_transition(refund_id=refund.pk, to_status=target)
    refund.refresh_from_db()
    assert refund.status == final and not refund.logs.exists()


def test_every_status_is_reachable_and_every_open_status_can_end():
    reachable = {RefundStatus.PENDING_APPROVAL} | {t for targets in ALLOWED_TRANSITIONS.values() for t in targets}
    assert reachable == set(RefundStatus.values)
    assert all(ALLOWED_TRANSITIONS[s] & FINAL_STATUSES for s in ALLOWED_TRANSITIONS)


def test_transition_saves_logs_and_announces(manager):
    refund = RefundFactory()
    heard = []

    def listener(sender, refund, from_status, to_status, actor, **kw):
        heard.append((refund.pk, from_status, to_status, actor))

    refund_status_changed.connect(listener, dispatch_uid="test-listener")
    try:
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED, actor=manager, message="dup")
    finally:
        refund_status_changed.disconnect(dispatch_uid="test-listener")

    refund.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED and refund.resolved_at is not None
    assert heard == [(refund.pk, "pending_approval", "canceled", manager)]
    log = refund.logs.get()
    assert (log.event, log.from_status, log.to_status, log.actor, log.message) == (
        "status_changed", "pending_approval", "canceled", manager, "dup",
    )


def test_refund_log_is_append_only():
    refund = RefundFactory()
    log = transitions.refund_log_append(refund=refund, event=RefundLog.Event.NOTE, message="hello")

    log.message = "rewritten"
    with pytest.raises(TypeError):
        log.save()
    with pytest.raises(TypeError):
        log.delete()
    with pytest.raises(TypeError):
        RefundLog.objects.filter(pk=log.pk).update(message="x")
    with pytest.raises(TypeError):
        RefundLog.objects.all().delete()
    assert RefundLog.objects.get(pk=log.pk).message == "hello"


def test_cancel_only_before_execution(agent, manager):
    waiting = RefundFactory(requested_by=agent)
    approved = RefundFactory(requested_by=agent, status=RefundStatus.APPROVED)
    sent = RefundFactory(status=RefundStatus.PROCESSING)
    someone_elses = RefundFactory()

    canceled = execution.refund_cancel(refund_id=waiting.pk, actor=agent, comment="customer changed mind")
    execution.refund_cancel(refund_id=approved.pk, actor=manager, comment="")
    with pytest.raises(errors.InvalidTransition):
        execution.refund_cancel(refund_id=sent.pk, actor=manager, comment="too late")
    with pytest.raises(errors.PermissionDenied):
        execution.refund_cancel(refund_id=someone_elses.pk, actor=agent, comment="not mine")

    assert canceled.pk == waiting.pk and canceled.status == RefundStatus.CANCELED
    for refund in (waiting, approved, sent, someone_elses):
        refund.refresh_from_db()
    assert (waiting.status, approved.status) == (RefundStatus.CANCELED, RefundStatus.CANCELED)
    assert (sent.status, someone_elses.status) == (RefundStatus.PROCESSING, RefundStatus.PENDING_APPROVAL)
    [log] = waiting.logs.all()
    assert (log.from_status, log.to_status, log.actor, log.message) == (
        "pending_approval", "canceled", agent, "customer changed mind",
    )
    assert approved.logs.get().message == "Canceled"
    assert not sent.logs.exists() and not someone_elses.logs.exists()


def test_dispatcher_hands_out_due_work_once(django_capture_on_commit_callbacks, settings):
    now = timezone.now()
    lost = RefundFactory(status=RefundStatus.APPROVED, next_action_at=now - timedelta(seconds=1))
    crashed = RefundFactory(status=RefundStatus.PROCESSING, next_action_at=now - timedelta(seconds=1))
    polling = RefundFactory(
        status=RefundStatus.PROCESSING, connector_refund_id="re_x", next_action_at=now - timedelta(seconds=1)
    )
    RefundFactory(status=RefundStatus.PROCESSING, connector_refund_id="re_y", next_action_at=now + timedelta(hours=1))
    stuck = RefundFactory(
        status=RefundStatus.PROCESSING, connector_refund_id="re_z", next_action_at=now,
        submitted_at=now - timedelta(seconds=settings.REFUND_POLL_GIVE_UP_SECONDS + 1),
    )

    with django_capture_on_commit_callbacks() as callbacks:
        first = dispatch.refunds_dispatch_due()
    second = dispatch.refunds_dispatch_due()

    assert sorted(first["submit"]) == sorted([lost.pk, crashed.pk])
    assert first["sync"] == [polling.pk] and first["flagged"] == [stuck.pk]
    assert len(callbacks) == 3
    assert second == {"submit": [], "sync": [], "flagged": [], "events": []}  # each pushed into the future
    polling.refresh_from_db()
    stuck.refresh_from_db()
    assert polling.poll_count == 1 and polling.next_action_at > now
    assert stuck.status == RefundStatus.NEEDS_ATTENTION


def test_refund_create_logs_the_request_with_its_author_and_announces_it(agent):
    """The first log row says who asked, what and with which data; receivers hear "" → status."""
    payment = PaymentFactory()
    fields = dict(
        provider="stripe", connector_transaction_id=payment.connector_transaction_id, payment=payment,
        amount_minor=700, currency="USD", requested_by=agent, request_fingerprint="0" * 64,
        status=RefundStatus.PENDING_APPROVAL,
    )
    heard = []

    def listener(sender, refund, from_status, to_status, actor, **kw):
        heard.append((refund.pk, from_status, to_status, actor))

    refund_status_changed.connect(listener, sender=RefundRequest, dispatch_uid="test-create-listener")
    try:
        refund = transitions.refund_create(
            actor=agent, message="Requested 7.00 USD", data={"payment_verified": True},
            merchant_refund_id="announced", idempotency_key="k-announced", **fields,
        )
        quiet = transitions.refund_create(
            message="Recorded from the provider", announce=False,
            merchant_refund_id="quiet", idempotency_key="k-quiet", **fields,
        )
    finally:
        refund_status_changed.disconnect(sender=RefundRequest, dispatch_uid="test-create-listener")

    assert heard == [(refund.pk, "", "pending_approval", agent)]  # the quiet one is not announced
    log = refund.logs.get()
    assert (log.event, log.from_status, log.to_status, log.actor, log.message, log.data) == (
        "requested", "", "pending_approval", agent, "Requested 7.00 USD", {"payment_verified": True},
    )
    quiet_log = quiet.logs.get()
    assert (quiet_log.actor, quiet_log.message, quiet_log.data) == (None, "Recorded from the provider", {})


def test_flag_for_attention_hands_the_refund_to_a_person_with_the_reason():
    """needs_attention keeps the code and message (cut to their columns), stops the dispatcher
    from picking it up again, and logs the message; a refund that moved on is left alone."""
    now = timezone.now()
    refund = RefundFactory(status=RefundStatus.PROCESSING, next_action_at=now, call_started_at=now)

    flagged = transitions.refund_flag_for_attention(refund_id=refund.pk, message="m" * 600, code="c" * 70)

    assert flagged.pk == refund.pk
    refund.refresh_from_db()
    assert refund.status == RefundStatus.NEEDS_ATTENTION
    assert refund.error_code == "c" * 64 and refund.error_message == "m" * 500
    assert refund.next_action_at is None and refund.call_started_at is None
    log = refund.logs.get()
    assert (log.from_status, log.to_status, log.message) == ("processing", "needs_attention", "m" * 600)

    other = RefundFactory(status=RefundStatus.PROCESSING)
    transitions.refund_flag_for_attention(refund_id=other.pk, message="no code given")
    other.refresh_from_db()
    assert (other.error_code, other.error_message) == ("", "no code given")

    done = RefundFactory(status=RefundStatus.SUCCEEDED)
    assert transitions.refund_flag_for_attention(refund_id=done.pk, message="late") is None
    done.refresh_from_db()
    assert done.status == RefundStatus.SUCCEEDED and not done.logs.exists()


def test_only_the_provider_may_turn_a_success_into_a_failure():
    """succeeded → failed is the provider's correction (a bank bounced the refund): refused to
    everyone else, admitted with allow_correction, and still only that one way."""
    refund = RefundFactory(status=RefundStatus.SUCCEEDED)
    with pytest.raises(errors.InvalidTransition) as refused:
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.FAILED)
    assert str(refused.value) == f"Refund {refund} cannot go from succeeded to failed."
    with pytest.raises(errors.InvalidTransition):
        transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED, allow_correction=True)

    corrected = transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.FAILED, allow_correction=True)

    assert corrected.status == RefundStatus.FAILED
    log = refund.logs.get()
    assert (log.from_status, log.to_status, log.message) == ("succeeded", "failed", "")
    # On any other status a correction adds nothing to the ordinary table.
    waiting = RefundFactory()
    with pytest.raises(errors.InvalidTransition):
        transitions.refund_transition(refund_id=waiting.pk, to_status=RefundStatus.FAILED, allow_correction=True)
    assert transitions.refund_transition(
        refund_id=waiting.pk, to_status=RefundStatus.CANCELED, allow_correction=True
    ).status == RefundStatus.CANCELED


def test_a_stale_expectation_is_refused_with_both_statuses():
    refund = RefundFactory()
    with pytest.raises(errors.InvalidTransition) as refused:
        transitions.refund_transition(
            refund_id=refund.pk, to_status=RefundStatus.CANCELED,
            expected_from={RefundStatus.PROCESSING, RefundStatus.APPROVED},
        )
    assert str(refused.value) == f"Refund {refund} is pending_approval, not approved/processing."
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL and not refund.logs.exists()


def test_a_final_status_stops_every_clock_and_a_note_is_cut_to_its_column():
    """Reaching a final status clears the in-flight lease and the next action and stamps
    resolved_at; a log message longer than its column is cut, an empty one stays empty."""
    now = timezone.now()
    refund = RefundFactory(status=RefundStatus.PROCESSING, call_started_at=now, next_action_at=now)

    transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.SUCCEEDED, message="x" * 1500)

    refund.refresh_from_db()
    assert refund.call_started_at is None and refund.next_action_at is None and refund.resolved_at is not None
    assert refund.logs.get().message == "x" * 1000

    note = transitions.refund_log_append(refund=refund, event=RefundLog.Event.NOTE)
    assert (note.message, note.data, note.actor) == ("", {}, None)

    # Into processing, the lease the caller did not mention is left as it was.
    sent = RefundFactory(status=RefundStatus.APPROVED, call_started_at=now)
    transitions.refund_transition(refund_id=sent.pk, to_status=RefundStatus.PROCESSING)
    sent.refresh_from_db()
    assert sent.call_started_at == now and sent.resolved_at is None


def test_a_transition_keeps_its_data_and_announces_itself_as_a_refund(manager):
    refund = RefundFactory(status=RefundStatus.APPROVED)
    heard = []

    def listener(sender, refund, from_status, to_status, actor, **kw):
        heard.append((refund.pk, from_status, to_status, actor))

    refund_status_changed.connect(listener, sender=RefundRequest, dispatch_uid="test-sender-listener")
    try:
        transitions.refund_transition(
            refund_id=refund.pk, to_status=RefundStatus.PROCESSING, actor=manager, data={"attempt": 1}
        )
    finally:
        refund_status_changed.disconnect(sender=RefundRequest, dispatch_uid="test-sender-listener")

    assert heard == [(refund.pk, "approved", "processing", manager)]
    assert refund.logs.get().data == {"attempt": 1}


def _new_refund_fields(agent, merchant_refund_id):
    payment = PaymentFactory()
    return dict(
        provider="stripe", connector_transaction_id=payment.connector_transaction_id, payment=payment,
        amount_minor=700, currency="USD", requested_by=agent, request_fingerprint="0" * 64,
        merchant_refund_id=merchant_refund_id, idempotency_key=f"k-{merchant_refund_id}",
    )


def test_a_refund_created_and_moved_on_at_once_is_stamped_as_a_transition_would_stamp_it(agent):
    """refund_create(onward=...) writes what refund_transition would have written for the move:
    a move to a final status (here a request withdrawn as it is filed) is resolved at creation."""
    before = timezone.now()
    heard = []

    def listener(sender, refund, from_status, to_status, actor, log, **kw):
        heard.append((from_status, to_status, actor, log.message))

    refund_status_changed.connect(listener, sender=RefundRequest, dispatch_uid="test-onward-listener")
    try:
        refund = transitions.refund_create(
            status=RefundStatus.PENDING_APPROVAL, actor=None, message="Requested",
            notes=[transitions.refund_log_row(event=RefundLog.Event.NOTE, message="A note between")],
            onward=transitions.Onward(to_status=RefundStatus.CANCELED, message="Withdrawn at once", actor=agent),
            **_new_refund_fields(agent, "withdrawn"),
        )
    finally:
        refund_status_changed.disconnect(sender=RefundRequest, dispatch_uid="test-onward-listener")

    # Each announcement carries its own log row (receivers read the message from it).
    assert heard == [
        ("", "pending_approval", None, "Requested"), ("pending_approval", "canceled", agent, "Withdrawn at once"),
    ]

    refund.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED
    assert before <= refund.resolved_at <= timezone.now() and refund.next_action_at is None
    assert [(log.event, log.from_status, log.to_status, log.actor, log.message) for log in refund.logs.order_by("id")] == [
        ("requested", "", "pending_approval", None, "Requested"),
        ("note", "", "", None, "A note between"),
        ("status_changed", "pending_approval", "canceled", agent, "Withdrawn at once"),
    ]


def test_a_refund_cannot_be_created_moving_on_from_a_final_status(agent):
    """Onward follows the transition table like any move: from a final status there is none."""
    with pytest.raises(errors.InvalidTransition) as refused:
        transitions.refund_create(
            status=RefundStatus.SUCCEEDED, message="Recorded",
            onward=transitions.Onward(to_status=RefundStatus.APPROVED), **_new_refund_fields(agent, "no-onward"),
        )

    assert str(refused.value) == "A new refund cannot go from succeeded to approved."
    assert not RefundRequest.objects.filter(merchant_refund_id="no-onward").exists()
