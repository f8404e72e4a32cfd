"""What the contract cannot say about the Robokassa adapter: exact money conversion, errors
kept with the provider's words, async calls that leave nothing behind, start-up checks."""

import asyncio
import concurrent.futures
import logging
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from refunds.checks import providers_configured
from refunds.providers import get_provider
from refunds.providers.base import Money, PermanentProviderError, TransientProviderError
from refunds.providers.robokassa import RobokassaProvider, to_minor, to_rubles


@pytest.mark.parametrize(
    ("rubles", "kopeks"),
    [(Decimal("1234.56"), 123456), ("0.1", 10), (Decimal("0.01"), 1), (30.0, 3000), ("99999999.99", 9999999999)],
)
def test_rubles_to_kopeks_is_exact(rubles, kopeks):
    assert to_minor(rubles) == kopeks
    assert to_rubles(Money(kopeks, "RUB")) == Decimal(str(rubles))


def test_fractions_of_a_kopek_and_other_currencies_are_refused():
    with pytest.raises(PermanentProviderError):
        to_minor(Decimal("1.005"))
    with pytest.raises(PermanentProviderError) as raised:
        to_rubles(Money(100, "USD"))
    assert raised.value.http_status == 422


def adapter():
    return get_provider("robokassa")


def test_server_errors_and_throttling_are_transient(robokassa_sandbox, robokassa_sandbox_clean):
    op_key = robokassa_sandbox.create_payment(1_000)
    for status, code in ((503, "http_503"), (429, "rate_limit")):
        robokassa_sandbox.set_faults(status, path_prefix="/RefundOfficeExt")
        with pytest.raises(TransientProviderError) as raised:
            adapter().get_payment(connector_transaction_id=op_key)
        assert raised.value.code == code


def test_every_call_has_a_timeout(robokassa_sandbox, robokassa_sandbox_clean, settings):
    settings.ROBOKASSA_TIMEOUT_SECONDS = 0.3
    op_key = robokassa_sandbox.create_payment(1_000)
    robokassa_sandbox.set_faults(None, delay_seconds=2, path_prefix="/RefundOfficeExt")

    with pytest.raises(TransientProviderError):
        adapter().get_payment(connector_transaction_id=op_key)


def test_a_wrong_password3_is_refused_by_the_signature_check(robokassa_sandbox, settings):
    op_key = robokassa_sandbox.create_payment(1_000)
    settings.ROBOKASSA_PASSWORD3 = "not-the-password"

    with pytest.raises(TransientProviderError) as raised:
        adapter().create_refund(
            merchant_refund_id="x", connector_transaction_id=op_key, amount=Money(100, "RUB"),
            reason="", metadata={}, idempotency_key="k",
        )

    assert raised.value.code == "authentication_failed" and "signature" in raised.value.message.lower()
    assert robokassa_sandbox.payment(op_key)["refunds"] == []


def test_calls_leave_no_loop_thread_or_session_behind(robokassa_sandbox, caplog):
    op_key = robokassa_sandbox.create_payment(1_000)
    threads = threading.active_count()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(10):
            adapter().get_payment(connector_transaction_id=op_key)

        async def from_inside_a_running_loop():
            return adapter().get_payment(connector_transaction_id=op_key)

        # In a thread of its own: another test's tooling may run a loop in the main thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            inside = pool.submit(asyncio.run, from_inside_a_running_loop()).result()
        assert inside.amount == Money(1_000, "RUB")

    assert threading.active_count() == threads
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


def test_a_missing_password3_stops_start_up(settings):
    settings.ROBOKASSA_PASSWORD3 = ""

    [error] = providers_configured()
    assert error.id == "refunds.E002" and "ROBOKASSA_PASSWORD3" in error.msg
    with pytest.raises(SystemCheckError, match="ROBOKASSA_PASSWORD3"):
        call_command("check")

    settings.REFUND_PROVIDERS = ["stripe"]  # not enabled: not checked
    assert providers_configured() == []


def test_unknown_provider_in_configuration(settings):
    settings.REFUND_PROVIDERS = ["stripe", "paypal"]

    [error] = providers_configured()

    assert error.id == "refunds.E001" and "paypal" in error.msg


def test_transaction_id_is_an_op_key():
    assert RobokassaProvider.validate_transaction_id("3FB2F3E7-B9F7-4C6F-B7E2-F0AD02E1AE86") is None
    assert RobokassaProvider.validate_transaction_id("pi_123456789")
    assert RobokassaProvider.validate_transaction_id("short")
