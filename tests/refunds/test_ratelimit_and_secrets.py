"""The shared provider rate, 429 handling, secrets kept out of logs, the append-only trigger."""

import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe
from django.db import connection, transaction
from django.db.utils import DatabaseError

from refunds.services import execution, intake, transitions
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers.stripe import translate_error
from refunds import ratelimit
from refunds.providers.base import TransientProviderError
from refunds.ratelimit import RateLimited, provider_slot_acquire
from refunds.redaction import RedactSecretsFilter, redact
from tests.factories import RefundFactory


class FrozenClock:
    """Stands in for the `time` module inside refunds.ratelimit: the clock stands still, and a
    sleep is recorded (as the moment the caller would wake) instead of slept. So slot booking is
    checked exactly, whatever else the machine is doing."""

    def __init__(self, now: float):
        self.now = now
        self.wakes: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.wakes.append(self.now + seconds)


@pytest.fixture
def frozen_clock(monkeypatch):
    # Just after a slot boundary (slots of 1/40 s and 1/2 s both start at whole seconds); a
    # provider name of this test's own keeps its slots apart from anyone else's in the cache.
    clock = FrozenClock(math.floor(time.time()) + 0.001)
    monkeypatch.setattr(ratelimit, "time", clock)
    return clock


@pytest.mark.django_db(transaction=True)
def test_slots_pace_every_caller_to_the_rate(settings, frozen_clock):
    provider = f"pacing-{uuid.uuid4().hex[:8]}"
    settings.PROVIDER_RATE_LIMITS = {provider: 40}

    def take(_):
        try:
            return provider_slot_acquire(provider, max_wait=5)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(take, range(40)))

    # 40 callers at once get 40 different slots, back to back at 1/40 s: the first goes now,
    # the other 39 each sleep until their own slot starts, the last about a second on.
    assert sorted(round(wake - frozen_clock.now, 6) for wake in frozen_clock.wakes) == [
        round(k / 40 - 0.001, 6) for k in range(1, 40)
    ]


@pytest.mark.django_db
def test_a_fully_booked_rate_holds_back_without_calling(settings, frozen_clock):
    provider = f"booked-{uuid.uuid4().hex[:8]}"
    settings.PROVIDER_RATE_LIMITS = {provider: 2}
    provider_slot_acquire(provider, max_wait=0.1)  # this slot: no wait
    assert frozen_clock.wakes == []
    provider_slot_acquire(provider, max_wait=1)  # the next, half a second on
    assert [round(wake - frozen_clock.now, 6) for wake in frozen_clock.wakes] == [0.499]

    with pytest.raises(RateLimited) as held:
        provider_slot_acquire(provider, max_wait=0.1)
    # Nothing free within 0.1 s: hold back (no sleep, no call) and come back after the booked slot.
    assert held.value.code == "local_rate_limit" and held.value.retry_in == pytest.approx(0.6)
    assert len(frozen_clock.wakes) == 1


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
        with pytest.raises(TransientProviderError) as raised:
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
def test_the_rate_limit_fails_open_when_its_cache_is_down(settings):
    """With Redis gone, intake and approvals still work; Stripe's own 429s are the limit then."""
    # A Redis nobody listens on (port 1): the connection is refused, as when Redis is down.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}
    settings.PROVIDER_RATE_LIMITS = {"stripe": 1}
    for _ in range(3):  # at 1/s, a working limiter would hold the second and third back
        assert provider_slot_acquire("stripe", max_wait=0.1) == 0.0


@pytest.mark.django_db
def test_a_refund_whose_provider_was_switched_off_waits_for_a_person(settings):
    refund = RefundFactory(status=RefundStatus.APPROVED)
    settings.REFUND_PROVIDERS = ["robokassa"]

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.NEEDS_ATTENTION, "provider_disabled")
