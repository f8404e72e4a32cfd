"""The shared provider rate, 429 handling, secrets kept out of logs, the append-only trigger."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe
from django.db import connection, transaction
from django.db.utils import DatabaseError

from refunds.services import execution, intake, transitions
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.stripe import translate_error
from refunds.ratelimit import RateLimited, provider_slot_acquire
from refunds.redaction import RedactSecretsFilter, redact
from tests.factories import RefundFactory


@pytest.mark.django_db(transaction=True)
def test_slots_pace_every_caller_to_the_rate(settings):
    settings.PROVIDER_RATE_LIMITS = {"stripe": 40}

    def take(_):
        provider_slot_acquire("stripe", max_wait=5)
        connection.close()
        return time.monotonic()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        finished = list(pool.map(take, range(40)))
    elapsed = max(finished) - started

    # 40 slots at 40/s take about a second however many callers ask at once.
    assert 0.85 <= elapsed <= 2.5


@pytest.mark.django_db
def test_a_fully_booked_rate_holds_back_without_calling(settings):
    settings.PROVIDER_RATE_LIMITS = {"stripe": 2}
    provider_slot_acquire("stripe", max_wait=0.1)
    provider_slot_acquire("stripe", max_wait=1)  # the next slot, half a second on

    with pytest.raises(RateLimited) as held:
        provider_slot_acquire("stripe", max_wait=0.1)
    assert held.value.retry_in > 0 and held.value.code == "local_rate_limit"


@pytest.mark.django_db
def test_provider_429s_wait_as_told_and_cost_no_attempt(agent, stripe_sandbox, stripe_sandbox_clean, settings):
    settings.REFUND_SUBMIT_MAX_ATTEMPTS = 2
    pi = stripe_sandbox.create_payment(10_000)
    refund, _ = intake.refund_request_create(
        merchant_refund_id="throttled", provider="stripe", connector_transaction_id=pi,
        amount=Money(1000, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    stripe_sandbox.set_faults(status=429, count=5, path_prefix="/v1/refunds", methods=["POST"])

    for _ in range(5):
        with pytest.raises(Exception) as raised:
            execution.refund_submit(refund_id=refund.pk)
        assert raised.value.code == "rate_limit" and 1 <= raised.value.retry_in <= 1.5
        RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None)
    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED  # five 429s, yet not flagged with a budget of 2
    assert refund.submit_attempts == 1


def test_translated_errors_and_log_lines_hide_secrets(caplog):
    key = "sk_test_51HxYzABCDEFGHIJKLMNOPQRSTUV"
    error = translate_error(stripe.AuthenticationError(f"Invalid API Key provided: {key}", http_status=401))
    assert key not in error.message and "[redacted]" in error.message
    assert redact("Authorization: Token ro_abcdefghijklmnopqrstuvwxyz123") == "Authorization: [redacted]"
    assert redact("whsec_abc123 then sk_live_9Zz") == "[redacted] then [redacted]"

    logger = logging.getLogger("refunds.test")
    logger.addFilter(RedactSecretsFilter())
    try:
        with caplog.at_level(logging.INFO, logger="refunds.test"):
            logger.info("calling Stripe with %s", key)
            try:
                raise RuntimeError(f"boom {key}")
            except RuntimeError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    assert key not in caplog.text


@pytest.mark.django_db
def test_refund_log_stored_messages_are_redacted():
    refund = RefundFactory()
    log = transitions.refund_log_append(refund=refund, event=RefundLog.Event.NOTE, message="key sk_test_abcdef123456")
    assert RefundLog.objects.get(pk=log.pk).message == "key [redacted]"


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the trigger lives in PostgreSQL")
def test_postgres_refuses_to_change_or_delete_log_rows():
    refund = RefundFactory()
    log = transitions.refund_log_append(refund=refund, event=RefundLog.Event.NOTE, message="kept")
    for sql in ("UPDATE refunds_refundlog SET message = 'x' WHERE id = %s", "DELETE FROM refunds_refundlog WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [log.pk])
    assert RefundLog.objects.get(pk=log.pk).message == "kept"


@pytest.mark.django_db
def test_the_rate_limit_fails_open_when_its_cache_is_down(settings, monkeypatch):
    """With Redis gone, intake and approvals still work; Stripe's own 429s are the limit then."""
    from refunds import ratelimit

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(ratelimit.cache, "add", down)
    assert provider_slot_acquire("stripe", max_wait=1) == 0.0


@pytest.mark.django_db
def test_a_refund_whose_provider_was_switched_off_waits_for_a_person(settings):
    refund = RefundFactory(status=RefundStatus.APPROVED)
    settings.REFUND_PROVIDERS = ["robokassa"]

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "provider_disabled")
