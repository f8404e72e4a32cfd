"""What the contract cannot say about the Robokassa adapter: exact money conversion, errors
kept with the provider's words, OpStateExt as Robokassa answers it, async calls that leave
nothing behind, start-up checks."""

import asyncio
import concurrent.futures
import logging
import re
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from refunds.checks import providers_configured
from refunds.providers import get_provider
from refunds.providers.base import Money, PermanentProviderError, TransientProviderError
from refunds.providers.base import TransactionNotFound
from refunds.providers.robokassa import RobokassaProvider
from refunds.providers.robokassa_api import parse_op_state, to_minor, to_rubles

OP_STATE = "/Merchant/WebService/Service.asmx/OpStateExt"


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
    invoice_id = robokassa_sandbox.create_payment(1_000)
    for status, code in ((503, "http_503"), (429, "rate_limit")):
        robokassa_sandbox.set_faults(status, path_prefix=OP_STATE)
        with pytest.raises(TransientProviderError) as raised:
            adapter().get_payment(connector_transaction_id=invoice_id)
        assert raised.value.code == code


def test_every_call_has_a_timeout(robokassa_sandbox, robokassa_sandbox_clean, settings):
    settings.ROBOKASSA_TIMEOUT_SECONDS = 0.3
    invoice_id = robokassa_sandbox.create_payment(1_000)
    robokassa_sandbox.set_faults(None, delay_seconds=2, path_prefix=OP_STATE)

    with pytest.raises(TransientProviderError):
        adapter().get_payment(connector_transaction_id=invoice_id)


def test_a_wrong_password3_is_refused_by_the_signature_check(robokassa_sandbox, settings):
    invoice_id = robokassa_sandbox.create_payment(1_000)
    settings.ROBOKASSA_PASSWORD3 = "not-the-password"

    with pytest.raises(TransientProviderError) as raised:
        adapter().create_refund(
            merchant_refund_id="x", connector_transaction_id=invoice_id, amount=Money(100, "RUB"),
            reason="", metadata={}, idempotency_key="k",
        )

    assert raised.value.code == "authentication_failed" and "signature" in raised.value.message.lower()
    assert robokassa_sandbox.payment(invoice_id)["refunds"] == []


def test_calls_leave_no_loop_thread_or_session_behind(robokassa_sandbox, caplog):
    invoice_id = robokassa_sandbox.create_payment(1_000)
    threads = threading.active_count()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(10):
            adapter().get_payment(connector_transaction_id=invoice_id)

        async def from_inside_a_running_loop():
            return adapter().get_payment(connector_transaction_id=invoice_id)

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




def test_transaction_id_is_an_invoice_id():
    assert RobokassaProvider.validate_transaction_id("12345") is None
    assert RobokassaProvider.validate_transaction_id("2147483647") is None
    for wrong in ("0", "007", "2147483648", "3FB2F3E7-B9F7-4C6F-B7E2-F0AD02E1AE86", "pi_123456789"):
        assert "InvoiceID" in RobokassaProvider.validate_transaction_id(wrong)


def test_the_published_schema_accepts_exactly_the_invoice_ids_the_api_accepts():
    """The OpenAPI pattern is what API clients (and the schemathesis run) trust: an id it
    allows must not come back as a 400 (found by schemathesis: 3579251666)."""
    schema = re.compile(RobokassaProvider.transaction_id_pattern)
    for value in ("1", "999999999", "1999999999", "2147483599", "2147483647", "2147483648", "2147483650",
                  "2150000000", "3579251666", "9999999999", "0", "01"):
        assert bool(schema.search(value)) == (RobokassaProvider.validate_transaction_id(value) is None), value


def refund_at(invoice_id, minor=None):
    return adapter().create_refund(
        merchant_refund_id="x", connector_transaction_id=invoice_id,
        amount=None if minor is None else Money(minor, "RUB"), reason="", metadata={}, idempotency_key="k",
    )


def test_op_state_ext_is_read_exactly_and_namespaced():
    body = (
        '<?xml version="1.0" encoding="utf-8"?><OperationStateResponse xmlns="http://merchant.roboxchange.com/WebService/">'
        "<Result><Code>0</Code></Result><State><Code>100</Code></State>"
        "<Info><OutSum>1999.990000</OutSum><OpKey>AB12-CD</OpKey></Info></OperationStateResponse>"
    )
    state = parse_op_state("7", body)
    assert (state.state, state.out_sum, state.op_key) == (100, 199_999, "AB12-CD")
    with pytest.raises(TransientProviderError) as raised:
        parse_op_state("7", "<html>gateway</html")
    assert raised.value.code == "bad_response"


def test_a_wrong_password2_or_hash_is_an_authentication_error_and_nothing_is_sent(robokassa_sandbox, settings):
    invoice_id = robokassa_sandbox.create_payment(1_000)
    for name, value in (("ROBOKASSA_PASSWORD2", "not-the-password"), ("ROBOKASSA_SIGNATURE_ALGORITHM", "SHA256")):
        setattr(settings, name, value)
        with pytest.raises(TransientProviderError) as raised:
            refund_at(invoice_id, 100)
        assert raised.value.code == "authentication_failed" and "PASSWORD2" in raised.value.message
        assert raised.value.refund_not_sent
        settings.ROBOKASSA_PASSWORD2, settings.ROBOKASSA_SIGNATURE_ALGORITHM = robokassa_sandbox.password2, "MD5"
    assert robokassa_sandbox.payment(invoice_id)["refunds"] == []


@pytest.mark.parametrize("state", [5, 10])
def test_an_unpaid_operation_cannot_be_refunded(robokassa_sandbox, state):
    invoice_id = robokassa_sandbox.create_payment(1_000, state=state)

    for call in (lambda: adapter().get_payment(connector_transaction_id=invoice_id), lambda: refund_at(invoice_id)):
        with pytest.raises(PermanentProviderError) as raised:
            call()
        assert (raised.value.code, raised.value.http_status) == ("payment_not_paid", 422)
        assert f"state {state}" in raised.value.message
    assert robokassa_sandbox.payment(invoice_id)["refunds"] == []


def test_a_payment_without_an_op_key_is_refused_before_anything_is_sent(robokassa_sandbox):
    invoice_id = robokassa_sandbox.create_payment(1_000, no_op_key=True)

    assert adapter().get_payment(connector_transaction_id=invoice_id).amount == Money(1_000, "RUB")
    with pytest.raises(PermanentProviderError) as raised:
        refund_at(invoice_id, 500)

    assert raised.value.code == "op_key_missing" and "cabinet" in raised.value.message
    assert robokassa_sandbox.payment(invoice_id)["refunds"] == []


def test_only_a_payment_returned_in_full_reports_a_refunded_sum(robokassa_sandbox):
    invoice_id = robokassa_sandbox.create_payment(2_000, behavior="stay")
    first = refund_at(invoice_id, 500)
    robokassa_sandbox.settle(first.connector_refund_id, "finished")
    assert adapter().get_payment(connector_transaction_id=invoice_id).amount_refunded == 0  # not reported

    rest = refund_at(invoice_id)  # no amount: the rest
    robokassa_sandbox.settle(rest.connector_refund_id, "finished")
    info = adapter().get_payment(connector_transaction_id=invoice_id)

    assert rest.amount == Money(1_500, "RUB")
    assert (info.status, info.amount_refunded, info.refundable) == ("refunded", 2_000, 0)


def test_refunds_cannot_be_listed(robokassa_sandbox):
    with pytest.raises(PermanentProviderError) as raised:
        adapter().list_refunds(connector_transaction_id=robokassa_sandbox.create_payment(1_000))
    assert raised.value.code == "lookup_unavailable" and not isinstance(raised.value, TransactionNotFound)
