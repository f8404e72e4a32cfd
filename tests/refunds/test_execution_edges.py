"""Executing refunds, at the edges the mutation run (tests/README.md) found untested: what each
attempt logs and when the next is due, the provider's 429, the last attempt, what the provider's
answer records, polling's clock, and the person's retry and cancel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from refunds import errors
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.base import PermanentProviderError, ProviderRefundStatus, RefundResult, TransientProviderError
from refunds.providers.stripe import StripeProvider
from refunds.services import execution, intake
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved(agent, stripe_sandbox):
    """approved(amount=2000, behavior=None, **fields) -> an auto-approved refund on a new 100.00 USD payment."""

    def make(amount=2000, *, behavior=None, reason="", metadata=None, reason_code=""):
        pi = stripe_sandbox.create_payment(10_000, behavior=behavior)
        refund, _ = intake.refund_request_create(
            merchant_refund_id=f"edge-{pi}", provider="stripe", connector_transaction_id=pi,
            amount=Money(amount, "USD"), reason=reason, metadata=metadata or {}, product="",
            requested_by=agent, reason_code=reason_code,
        )
        assert refund.status == RefundStatus.APPROVED
        return refund

    return make


def logs(refund, event):
    return list(refund.logs.filter(event=event).order_by("pk"))


def due_in(refund) -> float:
    refund.refresh_from_db()
    return (refund.next_action_at - timezone.now()).total_seconds()


def test_each_failed_attempt_is_logged_and_the_next_is_due_later(approved, stripe_sandbox, stripe_sandbox_clean):
    refund = approved()
    stripe_sandbox.set_faults(status=503, count=2, path_prefix="/v1/refunds", methods=["POST"])
    waits = []
    for _ in range(2):
        with pytest.raises(TransientProviderError) as raised:
            execution.refund_submit(refund_id=refund.pk)
        waits.append(raised.value.retry_in)
        assert 0 < due_in(refund) <= raised.value.retry_in
        RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)

    # Backoff from REFUND_RETRY_BACKOFF_BASE (5 s) with jitter: 2.5-5 s, then 5-10 s.
    assert 2.5 <= waits[0] <= 5 and 5 <= waits[1] <= 10
    calls = logs(refund, RefundLog.Event.PROVIDER_CALL)
    assert [(c.message, c.data) for c in calls] == [
        (f"Asking stripe to refund (attempt {n})", {"idempotency_key": refund.idempotency_key, "attempt": n}) for n in (1, 2)
    ]
    failures = logs(refund, RefundLog.Event.PROVIDER_ERROR)
    for n, (failure, wait) in enumerate(zip(failures, waits), start=1):
        assert failure.message.startswith(f"Attempt {n} failed, retrying in {wait:.0f}s: ")
        assert failure.data == {"code": "http_503", "transient": True, "retry_in": round(wait, 1)}
    refund.refresh_from_db()
    assert (refund.submit_attempts, refund.call_started_at, refund.unconfirmed_calls) == (2, None, 2)
    assert refund.logs.get(to_status=RefundStatus.PROCESSING).message == "Submitting to stripe"
    assert refund.submitted_at is not None

    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.unconfirmed_calls) == (RefundStatus.SUCCEEDED, 0)


def test_the_providers_429_waits_as_told_and_costs_no_attempt(approved, stripe_sandbox, stripe_sandbox_clean, settings):
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 1
    refund = approved()
    stripe_sandbox.set_faults(status=429, count=1, path_prefix="/v1/refunds", methods=["POST"])

    with pytest.raises(TransientProviderError) as raised:
        execution.refund_submit(refund_id=refund.pk)

    # Retry-After: 1, with up to half again of jitter.
    assert 1.0 <= raised.value.retry_in <= 1.5
    assert 0 < due_in(refund) <= 1.5
    [throttled] = logs(refund, RefundLog.Event.PROVIDER_ERROR)
    assert throttled.message.startswith(f"Provider rate limit (429), retrying in {raised.value.retry_in:.0f}s: ")
    assert throttled.data == {"code": "rate_limit", "transient": True, "retry_in": round(raised.value.retry_in, 1)}
    assert (refund.status, refund.submit_attempts) == (RefundStatus.PROCESSING, 0)

    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
    execution.refund_submit(refund_id=refund.pk)  # the one attempt allowed is still there
    refund.refresh_from_db()
    assert (refund.status, refund.submit_attempts) == (RefundStatus.SUCCEEDED, 1)


def test_the_last_attempt_hands_the_refund_to_a_person(approved, stripe_sandbox, stripe_sandbox_clean, settings):
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 1
    refund = approved()
    stripe_sandbox.set_faults(status=502, count=1, path_prefix="/v1/refunds", methods=["POST"])

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    [last] = logs(refund, RefundLog.Event.PROVIDER_ERROR)
    assert last.message.startswith("Attempt 1 failed, no attempts left: ")
    assert last.data == {"code": "http_502", "transient": True}
    assert (refund.status, refund.error_code, refund.next_action_at) == (RefundStatus.NEEDS_ATTENTION, "http_502", None)
    assert refund.error_message.startswith("stripe kept failing after 1 attempts: ")


def test_what_is_sent_to_the_provider(approved, stripe_sandbox):
    refund = approved(reason="r" * 500, metadata={"ticket": "T-9", "n": 7}, reason_code="duplicate_charge")

    execution.refund_submit(refund_id=refund.pk)

    [at_stripe] = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": refund.connector_transaction_id})
    assert at_stripe.amount == 2000 and at_stripe.reason == "duplicate"
    assert {k: at_stripe.metadata[k] for k in ("ticket", "n", "reason_code", "reason_note")} == {
        "ticket": "T-9", "n": "7", "reason_code": "duplicate_charge", "reason_note": "r" * 500,
    }


def test_the_providers_answer_is_logged_with_what_it_said(approved):
    refund = approved(behavior="stay_pending")
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()

    [answer] = logs(refund, RefundLog.Event.PROVIDER_ANSWER)
    assert (answer.message, answer.data) == (
        f"stripe answered: refund {refund.connector_refund_id} pending",
        {"connector_refund_id": refund.connector_refund_id, "status": "pending",
         "amount": {"minor_amount": 2000, "currency": "USD"}, "failure_code": ""},
    )
    failed = RefundResult(refund.connector_refund_id, ProviderRefundStatus.FAILED, Money(2000, "USD"))
    execution.refund_record_provider_result(refund_id=refund.pk, result=failed)
    refund.refresh_from_db()
    assert (refund.status, refund.provider_status, refund.error_code, refund.error_message) == (
        RefundStatus.FAILED, "failed", "refund_failed", "The provider reported the refund failed.",
    )
    assert refund.logs.get(to_status=RefundStatus.FAILED).message == "Provider reports failed"


def test_a_pending_refund_is_polled_on_a_growing_clock(approved, settings):
    settings.REFUND_POLL_FIRST_DELAY = 7
    settings.REFUND_POLL_MAX_DELAY = 100
    refund = approved(behavior="stay_pending")
    execution.refund_submit(refund_id=refund.pk)
    assert 6 < due_in(refund) <= 7
    assert refund.logs.get(to_status=RefundStatus.PROCESSING).message == "Submitting to stripe"

    for poll_count, expected in ((2, 28), (3, 56), (5, 100)):
        RefundRequest.objects.filter(pk=refund.pk).update(poll_count=poll_count)
        execution.refund_sync_status(refund_id=refund.pk)
        assert expected - 1 < due_in(refund) <= expected
    assert execution.poll_delay(0, "robokassa") == timedelta(seconds=30)
    assert execution.poll_delay(40) == timedelta(seconds=100)


def test_a_refund_still_pending_when_first_heard_of_starts_its_clock(approved):
    """An answer that a refund is pending reaches an approved one (a lost create answer)."""
    refund = approved()
    RefundRequest.objects.filter(pk=refund.pk).update(poll_count=4)
    pending = RefundResult("re_heard_late", ProviderRefundStatus.PENDING, Money(2000, "USD"))

    execution.refund_record_provider_result(refund_id=refund.pk, result=pending)

    refund.refresh_from_db()
    assert (refund.status, refund.poll_count, refund.connector_refund_id) == (RefundStatus.PROCESSING, 0, "re_heard_late")
    assert 4 < due_in(refund) <= 5
    assert refund.logs.get(to_status=RefundStatus.PROCESSING).message == "Provider reports pending"


def test_a_failed_status_check_is_logged_and_polled_again(approved, stripe_sandbox, stripe_sandbox_clean):
    refund = approved(behavior="stay_pending")
    execution.refund_submit(refund_id=refund.pk)
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["GET"])

    assert execution.refund_sync_status(refund_id=refund.pk).pk == refund.pk

    [failed] = logs(refund, RefundLog.Event.PROVIDER_ERROR)
    assert failed.message.startswith("Status check failed, will poll again: ") and failed.data == {"code": "http_500"}
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING


def test_a_refund_whose_provider_was_switched_off_waits_for_a_person(approved, settings):
    refund = approved()
    settings.REFUND_PROVIDERS = ["robokassa"]

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "provider_disabled")
    assert refund.error_message == "The provider 'stripe' is not enabled (REFUND_PROVIDERS); enable it to go on"


def test_a_permanent_refusal_is_logged_with_its_code(approved, stripe_sandbox):
    refund = approved(2000)
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": refund.connector_transaction_id, "amount": 9000})

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    failed = refund.logs.get(to_status=RefundStatus.FAILED)
    assert failed.message == f"amount_too_large: {refund.error_message}" and failed.data == {"code": "amount_too_large"}
    assert refund.unconfirmed_calls == 0


def test_a_person_retries_with_a_fresh_budget(approved, manager, stripe_sandbox, stripe_sandbox_clean, settings,
                                              published_tasks, django_capture_on_commit_callbacks):
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 1
    refund = approved()
    stripe_sandbox.set_faults(status=502, count=1, path_prefix="/v1/refunds", methods=["POST"])
    execution.refund_submit(refund_id=refund.pk)
    with pytest.raises(errors.PermissionDenied, match="^You may not retry refunds.$"):
        execution.refund_retry(refund_id=refund.pk, actor=factories.agent(username="agent2"))

    with django_capture_on_commit_callbacks(execute=True):
        execution.refund_retry(refund_id=refund.pk, actor=manager)

    refund.refresh_from_db()
    assert (refund.status, refund.submit_attempts, refund.error_code, refund.error_message) == (
        RefundStatus.APPROVED, 0, "", "",
    )
    assert settings.REFUND_SUBMIT_LEASE_SECONDS - 5 < due_in(refund) <= settings.REFUND_SUBMIT_LEASE_SECONDS
    retried = refund.logs.get(to_status=RefundStatus.APPROVED, actor=manager)
    assert (retried.message, retried.data) == ("Retried by a person", {})
    assert published_tasks == [("refund_submit_task", (refund.pk,))]


def test_who_may_cancel_and_what_the_log_says(approved, agent, manager):
    mine, theirs, quiet = approved(), approved(), approved()
    with pytest.raises(errors.PermissionDenied, match="^You may not cancel this refund.$"):
        execution.refund_cancel(refund_id=mine.pk, actor=factories.agent(username="agent2"), comment="")

    execution.refund_cancel(refund_id=mine.pk, actor=agent, comment="Customer changed their mind")
    execution.refund_cancel(refund_id=theirs.pk, actor=manager, comment="")
    execution.refund_submit(refund_id=quiet.pk)

    assert mine.logs.get(to_status=RefundStatus.CANCELED).message == "Customer changed their mind"
    assert theirs.logs.get(to_status=RefundStatus.CANCELED, actor=manager).message == "Canceled"
    with pytest.raises(errors.InvalidTransition):
        execution.refund_cancel(refund_id=quiet.pk, actor=agent, comment="")  # sent already


def test_an_approval_hands_the_refund_to_the_worker(agent, manager, stripe_sandbox, settings, published_tasks,
                                                     django_capture_on_commit_callbacks):
    pi = stripe_sandbox.create_payment(10_000)
    refund, _ = intake.refund_request_create(
        merchant_refund_id="big", provider="stripe", connector_transaction_id=pi, amount=Money(9000, "USD"),
        reason="", metadata={}, product="", requested_by=agent,
    )
    assert refund.status == RefundStatus.PENDING_APPROVAL

    with django_capture_on_commit_callbacks(execute=True):
        execution.refund_mark_approved(refund_id=refund.pk, actor=manager, message="Checked the order")

    refund.refresh_from_db()
    assert refund.status == RefundStatus.APPROVED and refund.approved_at is not None
    assert settings.REFUND_SUBMIT_LEASE_SECONDS - 5 < due_in(refund) <= settings.REFUND_SUBMIT_LEASE_SECONDS
    assert refund.logs.get(to_status=RefundStatus.APPROVED).message == "Checked the order"
    assert published_tasks == [("refund_submit_task", (refund.pk,))]


@pytest.mark.parametrize(
    ("pi", "currency", "code"),
    [(None, "EUR", "currency_mismatch"), ("pi_vanished000", "USD", "transaction_not_found")],
)
def test_a_refund_accepted_unverified_fails_when_the_payment_does_not_match(
    agent, stripe_sandbox, stripe_sandbox_clean, pi, currency, code
):
    pi = pi or stripe_sandbox.create_payment(10_000)
    stripe_sandbox.set_faults(status=503, count=3, path_prefix="/v1/payment_intents", methods=["GET"])
    refund, _ = intake.refund_request_create(
        merchant_refund_id="unverified", provider="stripe", connector_transaction_id=pi, amount=Money(1000, currency),
        reason="", metadata={}, product="", requested_by=agent,
    )
    stripe_sandbox.clear_faults()

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code, refund.payment_verified) == (RefundStatus.FAILED, code, False)
    assert refund.logs.get(to_status=RefundStatus.FAILED).data == {"code": code}
    assert logs(refund, RefundLog.Event.PROVIDER_CALL) == []  # never sent


def test_without_idempotent_creates_a_lost_answer_is_found_in_the_providers_list(
    approved, stripe_sandbox, stripe_sandbox_clean, monkeypatch
):
    """A provider that lists refunds but takes no idempotency key (Stripe, told to be one): the
    refund an unanswered call made is recorded, not made again. Refunds of another amount, one
    canceled, and one already ours are not it."""
    monkeypatch.setattr(StripeProvider, "idempotent_create", False)
    refund = approved(2000, behavior="stay_pending")
    pi = refund.connector_transaction_id
    client = stripe_sandbox.client()
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)
    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    [lost] = client.v1.refunds.list(params={"payment_intent": pi}).data
    # Made since, so listed before it (newest first): none of them is the lost one.
    client.v1.refunds.create(params={"payment_intent": pi, "amount": 3000})
    stripe_sandbox.settle(client.v1.refunds.create(params={"payment_intent": pi, "amount": 2000}).id, "canceled")
    ours, _ = intake.refund_request_create(
        merchant_refund_id="ours-recorded", provider="stripe", connector_transaction_id=pi, amount=Money(2000, "USD"),
        reason="", metadata={}, product="", requested_by=refund.requested_by,
    )
    execution.refund_submit(refund_id=ours.pk)
    assert client.v1.refunds.list(params={"payment_intent": pi}).data[-1].id == lost.id
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.connector_refund_id, refund.status, refund.unconfirmed_calls) == (lost.id, RefundStatus.PROCESSING, 0)
    assert len(client.v1.refunds.list(params={"payment_intent": pi}).data) == 4  # none made again
    assert refund.logs.filter(
        event=RefundLog.Event.NOTE, message=f"An earlier attempt made {lost.id}; recording it, not refunding again"
    ).exists()


def test_without_idempotent_creates_a_failed_lookup_is_retried_and_nothing_is_sent(
    approved, stripe_sandbox, stripe_sandbox_clean, monkeypatch
):
    monkeypatch.setattr(StripeProvider, "idempotent_create", False)
    refund = approved(2000)
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"])  # before any work
    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
    stripe_sandbox.set_faults(status=503, count=1, path_prefix="/v1/refunds", methods=["GET"])

    with pytest.raises(TransientProviderError) as raised:
        execution.refund_submit(refund_id=refund.pk)

    assert raised.value.retry_in > 0
    assert stripe_sandbox.client().v1.refunds.list(params={"payment_intent": refund.connector_transaction_id}).data == []
    assert logs(refund, RefundLog.Event.PROVIDER_ERROR)[-1].message.startswith("Attempt 2 failed, retrying in ")
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
    execution.refund_submit(refund_id=refund.pk)  # nothing was made: now it is created, once
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert len(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": refund.connector_transaction_id}).data) == 1


def test_a_provider_that_cannot_list_leaves_the_decision_to_a_person(api, agent, robokassa_sandbox,
                                                                      robokassa_sandbox_clean):
    invoice_id = robokassa_sandbox.create_payment(10_000, behavior="stay")
    refund, _ = intake.refund_request_create(
        merchant_refund_id=f"rk-{invoice_id}", provider="robokassa", connector_transaction_id=invoice_id,
        amount=Money(1000, "RUB"), reason="", metadata={}, product="", requested_by=agent,
    )
    robokassa_sandbox.set_faults(500, path_prefix="/RefundService/Refund/Create", after=True)
    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "unknown_outcome")
    assert refund.error_message.startswith(
        "Cannot tell whether an earlier attempt refunded at robokassa, so not asking again; check there ("
    )
    assert refund.error_message.endswith("). If it made no refund, Retry sends it")


def test_with_idempotent_creates_a_retry_asks_again_with_the_key_without_listing(
    approved, stripe_sandbox, stripe_sandbox_clean
):
    refund = approved(2000)
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)
    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)

    def listed():
        return sum(stripe_sandbox.stats()["requests"].get("GET /v1/refunds", {}).values())

    before = listed()
    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, listed()) == (RefundStatus.SUCCEEDED, before)
    assert len(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": refund.connector_transaction_id}).data) == 1


def test_a_long_refusal_is_cut_to_its_columns(approved, monkeypatch):
    """A provider's code and message longer than the columns are cut, not a database error on
    PostgreSQL (SQLite would keep them whole, so the lengths are checked here)."""
    code, message = "c" * 70, "m" * 600

    def refuse(self, **kwargs):
        raise PermanentProviderError(message, code=code)

    monkeypatch.setattr(StripeProvider, "create_refund", refuse)
    refund = approved()

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code, refund.error_message) == (RefundStatus.FAILED, code[:64], message[:500])


def test_a_final_refund_is_not_asked_about_again(approved, stripe_sandbox):
    refund = approved()
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    logged = refund.logs.count()

    assert execution.refund_sync_status(refund_id=refund.pk) is None

    assert refund.logs.count() == logged  # no status check, no answer recorded


def test_a_failed_lookup_on_the_last_attempt_hands_over_without_sending(
    approved, stripe_sandbox, stripe_sandbox_clean, monkeypatch, settings
):
    """Without idempotent creates, the last attempt's lookup of an earlier unanswered call fails:
    the refund goes to a person and nothing is asked of the provider again."""
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 2
    monkeypatch.setattr(StripeProvider, "idempotent_create", False)
    refund = approved(2000, behavior="stay_pending")
    stripe_sandbox.set_faults(status=500, count=1, path_prefix="/v1/refunds", methods=["POST"], after=True)
    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
    stripe_sandbox.set_faults(status=503, count=1, path_prefix="/v1/refunds", methods=["GET"])

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.connector_refund_id) == (RefundStatus.NEEDS_ATTENTION, "")
    assert len(logs(refund, RefundLog.Event.PROVIDER_CALL)) == 2 and logs(refund, RefundLog.Event.PROVIDER_ANSWER) == []
    assert len(stripe_sandbox.client().v1.refunds.list(params={"payment_intent": refund.connector_transaction_id}).data) == 1
