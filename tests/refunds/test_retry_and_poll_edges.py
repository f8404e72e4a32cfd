"""A person's retry and the status poll at the edges the mutation run (tests/README.md) found
untested: what a retry says and resets depends on this refund alone; only a refund waiting for a
person can be retried; one flagged before approval goes back to the approvers with the person's
words; a failed call reschedules its own refund only, and says when it never reached the create;
a poll waits for its provider's rate and hands a refund of a switched-off provider to a person;
a provider's long failure reasons are cut to their columns; a payment is its provider's own."""

from datetime import timedelta

import pytest
from django.utils import timezone

from refunds import errors
from refunds.models import PaymentAlias, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.base import ProviderRefundStatus, RefundResult, TransientProviderError
from refunds.providers.stripe import StripeProvider
from refunds.services import execution
from refunds.services.payments import payment_find
from tests.factories import PaymentFactory, RefundFactory
from tests.refunds.test_claim_edges import fully_booked
from tests.refunds.test_execution_edges import approved  # noqa: F401 - a fixture
from tests.refunds.test_robokassa_refunds import file_1000_rub

pytestmark = pytest.mark.django_db


def flagged(code: str, *, sent: bool = True, **fields) -> RefundRequest:
    """A refund waiting for a person: sent to the provider before (approved, submitted, one
    attempt), or flagged while it still waited for approval."""
    now = timezone.now()
    history = {"approved_at": now, "submitted_at": now, "submit_attempts": 1} if sent else {}
    return RefundFactory(
        status=RefundStatus.NEEDS_ATTENTION, error_code=code, error_message=f"{code} happened",
        **history, **fields,
    )


def retried_log(refund: RefundRequest, actor):
    return refund.logs.get(actor=actor, to_status__in=[RefundStatus.APPROVED, RefundStatus.PENDING_APPROVAL])


def test_a_person_who_checked_an_unknown_outcome_starts_its_calls_afresh(manager):
    refund = flagged("unknown_outcome", unconfirmed_calls=2)

    execution.refund_retry(refund_id=refund.pk, actor=manager, comment="  nothing in the cabinet ")

    refund.refresh_from_db()
    assert (refund.status, refund.unconfirmed_calls, refund.error_code) == (RefundStatus.APPROVED, 0, "")
    assert refund.outcome_checked_at is not None
    log = retried_log(refund, manager)
    assert log.message == "Retried by a person, who found no refund at the provider: nothing in the cabinet"
    assert log.data == {"outcome_checked": True}


def test_another_refunds_unknown_outcome_does_not_count_as_checking_this_one(manager):
    flagged("unknown_outcome", unconfirmed_calls=2)  # someone else's, not retried
    refund = flagged("provider_error", unconfirmed_calls=1)

    execution.refund_retry(refund_id=refund.pk, actor=manager)

    refund.refresh_from_db()
    assert (refund.status, refund.unconfirmed_calls, refund.outcome_checked_at) == (RefundStatus.APPROVED, 1, None)
    log = retried_log(refund, manager)
    assert (log.message, log.data) == ("Retried by a person", {})


@pytest.mark.parametrize("status", [RefundStatus.PENDING_APPROVAL, RefundStatus.SUCCEEDED, RefundStatus.FAILED])
def test_only_a_refund_waiting_for_a_person_can_be_retried(manager, status):
    refund = RefundFactory(status=status)

    with pytest.raises(errors.InvalidTransition):
        execution.refund_retry(refund_id=refund.pk, actor=manager)

    refund.refresh_from_db()
    assert (refund.status, refund.approved_at, refund.logs.count()) == (status, None, 0)


def test_a_refund_flagged_before_approval_goes_back_to_the_approvers_with_the_persons_words(manager):
    refund = flagged("dispute_open", sent=False)

    execution.refund_retry(refund_id=refund.pk, actor=manager, comment="  dispute won ")

    refund.refresh_from_db()
    assert (refund.status, refund.approved_at, refund.error_code, refund.error_message) == (
        RefundStatus.PENDING_APPROVAL, None, "", "",
    )
    log = retried_log(refund, manager)
    assert (log.from_status, log.message) == (RefundStatus.NEEDS_ATTENTION, "Sent back for approval by a person: dispute won")


def test_sent_back_without_a_comment_says_so_plainly(manager):
    refund = flagged("dispute_open", sent=False)

    execution.refund_retry(refund_id=refund.pk, actor=manager, comment="   ")

    assert retried_log(refund, manager).message == "Sent back for approval by a person"


def test_a_refund_approved_before_it_was_flagged_goes_to_the_worker_whatever_others_wait_for(manager):
    flagged("dispute_open", sent=False)  # another refund, flagged before its approval
    refund = flagged("dispute_open")

    execution.refund_retry(refund_id=refund.pk, actor=manager)

    refund.refresh_from_db()
    assert (refund.status, refund.submit_attempts, refund.error_code) == (RefundStatus.APPROVED, 0, "")


def test_a_poll_of_a_refund_whose_provider_was_switched_off_hands_it_to_a_person(settings):
    refund = RefundFactory(status=RefundStatus.PROCESSING, provider="robokassa", connector_refund_id="rk-1")
    settings.REFUND_PROVIDERS = ["stripe"]

    execution.refund_sync_status(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "provider_disabled")
    assert refund.error_message == "The provider 'robokassa' is not enabled (REFUND_PROVIDERS); enable it to go on"


def test_a_poll_waits_for_its_providers_rate_and_asks_nothing_when_it_is_fully_booked(
    approved, stripe_sandbox, settings  # noqa: F811
):
    refund = approved(behavior="stay_pending")
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    stripe_sandbox.settle(refund.connector_refund_id, "succeeded")
    fully_booked(settings)
    stripe_sandbox.reset_stats()

    assert execution.refund_sync_status(refund_id=refund.pk).status == RefundStatus.PROCESSING

    refund.refresh_from_db()
    assert (refund.status, refund.provider_status) == (RefundStatus.PROCESSING, "pending")
    assert stripe_sandbox.stats()["requests"] == {}  # Stripe was not asked
    settings.PROVIDER_RATE_LIMITS = {}
    execution.refund_sync_status(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert timezone.now() - refund.resolved_at < timedelta(minutes=1)


def test_a_failed_call_reschedules_its_own_refund_only_and_backs_off_below_a_second(
    approved, stripe_sandbox, stripe_sandbox_clean, settings  # noqa: F811
):
    settings.REFUND_RETRY_BACKOFF_BASE = settings.REFUND_RETRY_BACKOFF_MAX = 0.2
    failing, waiting = approved(), approved()
    waiting_due = RefundRequest.objects.get(pk=waiting.pk).next_action_at
    stripe_sandbox.set_faults(status=502, count=1, path_prefix="/v1/refunds", methods=["POST"])

    with pytest.raises(execution.TransientProviderError) as raised:
        execution.refund_submit(refund_id=failing.pk)

    # Full jitter within the configured ceiling: no floor of a second the settings did not ask for.
    assert 0.1 <= raised.value.retry_in <= 0.2
    failing.refresh_from_db()
    assert failing.next_action_at - timezone.now() <= timedelta(seconds=0.2)
    assert RefundRequest.objects.get(pk=waiting.pk).next_action_at == waiting_due  # not this call's business


def test_a_call_that_failed_before_the_create_is_logged_as_not_sent(api, agent, robokassa_sandbox, robokassa_sandbox_clean):
    invoice_id, refund = file_1000_rub(api, agent, robokassa_sandbox)
    # The operation's state, asked for before the create, cannot be read: the create was never called.
    robokassa_sandbox.set_faults(500, path_prefix="/Merchant/WebService/Service.asmx/OpStateExt")

    with pytest.raises(execution.TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.unconfirmed_calls == 0  # nothing can have been refunded: no person needs to look
    error = refund.logs.get(event="provider_error")
    assert (error.data["not_sent"], error.data["transient"]) == (True, True)
    assert robokassa_sandbox.payment(invoice_id)["refunds"] == []


def test_a_refund_recorded_while_its_call_failed_keeps_its_poll_time(
    approved, stripe_sandbox, settings, monkeypatch  # noqa: F811
):
    """The answer was lost but the refund was recorded meanwhile (its webhook, a reconcile): the
    failed call's backoff does not push the poll of the recorded refund back."""
    settings.REFUND_RETRY_BACKOFF_BASE = settings.REFUND_RETRY_BACKOFF_MAX = 600
    refund = approved(behavior="stay_pending")
    created = StripeProvider.create_refund

    def recorded_then_lost(self, **call):
        result = created(self, **call)
        execution.refund_record_provider_result(refund_id=refund.pk, result=result)  # as the webhook would
        raise TransientProviderError("Read timed out", code="timeout")

    monkeypatch.setattr(StripeProvider, "create_refund", recorded_then_lost)

    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING and refund.connector_refund_id
    assert refund.next_action_at - timezone.now() < timedelta(seconds=60)  # polled soon, not in 5-10 minutes


def test_an_approved_refund_flagged_before_its_first_call_goes_to_the_worker_on_retry(manager, settings):
    refund = RefundFactory(status=RefundStatus.APPROVED, approved_at=timezone.now())
    settings.REFUND_PROVIDERS = ["robokassa"]  # Stripe switched off before the worker got to it
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.error_code, refund.submit_attempts) == (
        RefundStatus.NEEDS_ATTENTION, "provider_disabled", 0,
    )
    settings.REFUND_PROVIDERS = ["stripe", "robokassa"]

    execution.refund_retry(refund_id=refund.pk, actor=manager, comment="Stripe is back")

    refund.refresh_from_db()
    assert refund.status == RefundStatus.APPROVED  # approved once already: not back to the approvers
    assert retried_log(refund, manager).message == "Retried by a person: Stripe is back"


def test_a_refund_still_pending_at_robokassa_is_polled_at_robokassas_pace(
    api, agent, robokassa_sandbox, robokassa_sandbox_clean, settings
):
    """Robokassa refunds take minutes: its first poll waits REFUND_POLL_FIRST_DELAY_BY_PROVIDER's
    30 s, not the 5 s every other provider gets, and so does every poll after a pending answer."""
    settings.REFUND_POLL_FIRST_DELAY_BY_PROVIDER = {"robokassa": 30}
    settings.REFUND_POLL_FIRST_DELAY = 5
    _, refund = file_1000_rub(api, agent, robokassa_sandbox)

    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING
    assert timedelta(seconds=25) < refund.next_action_at - timezone.now() <= timedelta(seconds=30)

    execution.refund_sync_status(refund_id=refund.pk)  # still pending at Robokassa
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING
    first = 30 * 2 ** refund.poll_count
    assert timedelta(seconds=first - 5) < refund.next_action_at - timezone.now() <= timedelta(seconds=first)


def test_a_robokassa_refund_found_pending_after_a_person_was_asked_is_polled_at_robokassas_pace(settings):
    """Flagged (its answer was lost), then found pending at Robokassa (a lookup, an event): it is
    processing again, and its first poll waits Robokassa's 30 s."""
    settings.REFUND_POLL_FIRST_DELAY_BY_PROVIDER = {"robokassa": 30}
    settings.REFUND_POLL_FIRST_DELAY = 5
    refund = flagged("unknown_outcome", payment=PaymentFactory(provider="robokassa", currency="RUB"), currency="RUB")

    execution.refund_record_provider_result(refund_id=refund.pk, result=RefundResult(
        connector_refund_id="7f0c7f6e-request", status=ProviderRefundStatus.PENDING, amount=Money(1000, "RUB"),
    ))

    refund.refresh_from_db()
    assert (refund.status, refund.poll_count) == (RefundStatus.PROCESSING, 0)
    assert timedelta(seconds=25) < refund.next_action_at - timezone.now() <= timedelta(seconds=30)


def test_a_refund_that_failed_at_the_provider_with_long_reasons_keeps_what_fits_its_columns():
    """A connector's failure code and message longer than the columns are cut, not a database
    error on PostgreSQL (SQLite would keep them whole, so the lengths are checked here)."""
    refund = RefundFactory(status=RefundStatus.PROCESSING, connector_refund_id="re_long")
    code, message = "c" * 70, "m" * 600

    execution.refund_record_provider_result(refund_id=refund.pk, result=RefundResult(
        connector_refund_id="re_long", status=ProviderRefundStatus.FAILED, amount=Money(1000, "USD"),
        failure_code=code, failure_message=message,
    ))

    refund.refresh_from_db()
    assert (refund.status, refund.error_code, refund.error_message) == (RefundStatus.FAILED, code[:64], message[:500])


def test_a_payment_is_found_under_its_own_provider_only():
    """Prism's Stripe connector and Stripe itself name one payment alike (pi_...): two rows,
    and each provider's refunds count against its own."""
    direct = PaymentFactory(provider="stripe", connector_transaction_id="pi_shared")
    PaymentAlias.objects.create(payment=direct, provider="stripe", connector_transaction_id="ch_shared")
    through_prism = PaymentFactory(provider="prism_stripe", connector_transaction_id="pi_shared")

    assert payment_find(provider="prism_stripe", connector_transaction_id="pi_shared") == through_prism
    assert payment_find(provider="stripe", connector_transaction_id="ch_shared") == direct
    assert payment_find(provider="prism_stripe", connector_transaction_id="ch_shared") is None  # Stripe's alias only
    assert payment_find(provider="robokassa", connector_transaction_id="pi_shared") is None


def test_a_429_without_retry_after_waits_about_a_second_and_costs_no_attempt(
    api, agent, robokassa_sandbox, robokassa_sandbox_clean
):
    """Robokassa's 429 names no wait (Stripe's does): the retry comes after 1-1.5 s."""
    _, refund = file_1000_rub(api, agent, robokassa_sandbox)
    robokassa_sandbox.set_faults(429, path_prefix="/RefundService/Refund/Create")

    with pytest.raises(TransientProviderError) as raised:
        execution.refund_submit(refund_id=refund.pk)

    assert raised.value.code == "rate_limit" and 1.0 <= raised.value.retry_in <= 1.5
    refund.refresh_from_db()
    assert refund.submit_attempts == 0
    assert refund.logs.get(event="provider_error").message.startswith("Provider rate limit (429), retrying in ")
