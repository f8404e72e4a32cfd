"""The Prism adapter beyond the contract: start-up checks that say what is wrong, errors
sorted into transient and permanent against the sandbox's injected faults, every call bounded
in time, the async SDK driven from sync code (one loop per thread, also under a running loop),
and no raw connector response in what we keep."""

import asyncio
import concurrent.futures
import json
import threading

import pytest
from django.urls import reverse

from refunds.checks import providers_configured
from refunds.providers import get_provider, provider_class
from refunds.providers import prism_runtime
from refunds.providers.base import Money, PermanentProviderError, ProviderRefundStatus, TransientProviderError
from tests.fixtures.prism import prism_sdk_or_skip


@pytest.fixture(autouse=True)
def _prism_enabled(settings):
    prism_sdk_or_skip()
    settings.REFUND_PROVIDERS = [*settings.REFUND_PROVIDERS, "prism_stripe"]


def refund(adapter, txn, minor):
    return adapter.create_refund(merchant_refund_id=f"prism-{txn[-8:]}-{minor}", connector_transaction_id=txn,
                                 amount=Money(minor, "USD"), reason="", metadata={}, idempotency_key="unused")


def config_errors(settings) -> list[str]:
    return [message.msg for message in providers_configured() if message.id == "refunds.E002"]


def test_a_configured_connector_passes_the_start_up_check(settings):
    assert config_errors(settings) == []


def test_missing_and_unknown_settings_are_named(settings):
    settings.PRISM_CONNECTORS = {"stripe": {}}
    [missing] = config_errors(settings)
    assert "prism_stripe" in missing and "PRISM_STRIPE_API_KEY" in missing

    settings.PRISM_CONNECTORS = {"stripe": {"api_key": "sk_test_x", "secret": "x"}}
    [unknown] = config_errors(settings)
    assert "PRISM_STRIPE_SECRET is not a setting" in unknown and "PRISM_STRIPE_BASE_URL" in unknown


def test_a_connector_lacking_a_credential_is_refused_at_start_up(settings):
    """Prism builds an Adyen refund offline: without the merchant account it cannot."""
    settings.REFUND_PROVIDERS = [*settings.REFUND_PROVIDERS, "prism_adyen"]
    settings.PRISM_CONNECTORS = {**settings.PRISM_CONNECTORS, "adyen": {"api_key": "key"}}
    [problem] = config_errors(settings)
    assert problem.startswith("prism_adyen is enabled but not configured: Prism cannot build a adyen refund")
    assert "PRISM_ADYEN_MERCHANT_ACCOUNT" in problem

    settings.PRISM_CONNECTORS["adyen"]["merchant_account"] = "Shop"
    assert config_errors(settings) == []


def test_flags_in_a_connector_config_are_read_from_the_environment(settings):
    settings.REFUND_PROVIDERS = [*settings.REFUND_PROVIDERS, "prism_cybersource"]
    settings.PRISM_CONNECTORS = {**settings.PRISM_CONNECTORS, "cybersource": {
        "api_key": "key", "merchant_account": "shop", "api_secret": "c2VjcmV0", "disable_avs": "true"}}
    assert config_errors(settings) == []

    cls = provider_class("prism_cybersource")
    adapter = cls(values=settings.PRISM_CONNECTORS["cybersource"], environment="SANDBOX", timeout=1)
    assert adapter._config.connector_config.cybersource.disable_avs is True


def test_a_connector_prism_does_not_have_is_named(settings):
    settings.REFUND_PROVIDERS = [*settings.REFUND_PROVIDERS, "prism_nosuchpsp"]
    [problem] = config_errors(settings)
    assert "Prism has no connector 'nosuchpsp'" in problem and "stripe" in problem


def test_transaction_ids_are_checked_by_connector(settings):
    assert provider_class("prism_stripe").validate_transaction_id("pi_123") is None
    assert "PaymentIntent" in provider_class("prism_stripe").validate_transaction_id("12345")


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_rate_limits_are_transient(status, stripe_sandbox, stripe_sandbox_clean):
    adapter = get_provider("prism_stripe")
    txn = stripe_sandbox.create_payment(2_000)
    stripe_sandbox.set_faults(status, count=1, path_prefix="/v1/refunds", methods=["POST"])

    with pytest.raises(TransientProviderError):
        refund(adapter, txn, 500)

    assert refund(adapter, txn, 500).amount == Money(500, "USD")  # the fault is gone: it works


def test_every_call_is_bounded_in_time(settings, stripe_sandbox, stripe_sandbox_clean):
    settings.PRISM_TIMEOUT_SECONDS = 1
    adapter = get_provider("prism_stripe")
    txn = stripe_sandbox.create_payment(2_000)
    stripe_sandbox.set_faults(None, count=1, path_prefix="/v1/payment_intents", delay_seconds=3)

    with pytest.raises(TransientProviderError) as raised:
        adapter.get_payment(connector_transaction_id=txn)

    assert raised.value.code in {"timeout", "total_timeout_exceeded", "response_timeout_exceeded"}


def test_errors_keep_no_raw_connector_response(stripe_sandbox, stripe_sandbox_clean):
    adapter = get_provider("prism_stripe")
    txn = stripe_sandbox.create_payment(1_000)

    with pytest.raises(PermanentProviderError) as raised:
        refund(adapter, txn, 5_000)

    error = raised.value
    assert error.code == "amount_too_large" and error.http_status == 422
    kept = f"{error} {error.message} {error.code} {error.__cause__!r} {error.__context__!r}"
    assert "invalid_request_error" not in kept and "{" not in kept


def in_a_thread(work):
    """work() in a thread of its own, which runs no loop (the test's own thread may: Playwright's)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result(timeout=60)


def test_one_loop_per_thread_reused_and_closed(stripe_sandbox, stripe_sandbox_clean):
    adapter = get_provider("prism_stripe")
    txn = stripe_sandbox.create_payment(3_000)

    def twice_then_close():
        adapter.get_payment(connector_transaction_id=txn)
        loop = prism_runtime._local.runtime.loop
        adapter.get_payment(connector_transaction_id=txn)
        reused = prism_runtime._local.runtime.loop is loop and not loop.is_closed()
        prism_runtime.close_thread_runtime()
        return reused, loop.is_closed(), adapter.get_payment(connector_transaction_id=txn).amount

    assert in_a_thread(twice_then_close) == (True, True, Money(3_000, "USD"))


def test_calls_from_async_code_and_from_many_threads(stripe_sandbox, stripe_sandbox_clean):
    adapter = get_provider("prism_stripe")
    txn = stripe_sandbox.create_payment(3_000)

    async def from_async_code():
        return adapter.get_payment(connector_transaction_id=txn)

    assert in_a_thread(lambda: asyncio.run(from_async_code())).amount == Money(3_000, "USD")

    seen = []
    threads = [threading.Thread(target=lambda: seen.append(adapter.get_payment(connector_transaction_id=txn).amount))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == [Money(3_000, "USD")] * 3


def test_the_support_form_looks_up_and_files_with_an_enabled_prism_connector(client, agent, stripe_sandbox):
    txn = stripe_sandbox.create_payment(4_200)
    client.force_login(agent)

    page = client.get(reverse("refund-new"), {"provider": "prism_stripe", "connector_transaction_id": txn})

    html = page.content.decode()
    assert '<option value="prism_stripe"' in html and "Stripe via Prism" in html
    assert "42.00 USD" in html and page.context["form"] is not None


def test_the_api_takes_prism_only_when_enabled(settings, api, agent, stripe_sandbox):
    txn = stripe_sandbox.create_payment(4_200)
    body = {"merchant_refund_id": "prism-api-1", "provider": "prism_stripe", "connector_transaction_id": txn,
            "amount": {"minor_amount": 1_000, "currency": "USD"}}
    schema = api(agent).get("/api/schema/", {"format": "json"}).json()
    assert "prism_stripe" in json.dumps(schema)

    settings.REFUND_PROVIDERS = ["stripe", "robokassa"]
    refused = api(agent).post("/api/refunds/", body, format="json")
    assert refused.status_code == 400 and "unknown_provider" in refused.content.decode()

    settings.REFUND_PROVIDERS = ["stripe", "robokassa", "prism_stripe"]
    filed = api(agent).post("/api/refunds/", body, format="json")
    assert filed.status_code == 201 and filed.json()["provider"] == "prism_stripe"


def test_a_refund_canceled_at_stripe_is_read_although_prism_cannot(stripe_sandbox):
    """Prism 0.6.0 cannot deserialise Stripe's `canceled` refund; the adapter reads it from the
    payment's refunds instead of polling a refund that will never change."""
    adapter = get_provider("prism_stripe")
    txn = stripe_sandbox.create_payment(3_000, behavior="stay_pending")
    created = refund(adapter, txn, 1_000)

    stripe_sandbox.settle(created.connector_refund_id, "canceled")
    final = adapter.get_refund(connector_refund_id=created.connector_refund_id, connector_transaction_id=txn)

    assert (final.status, final.amount) == (ProviderRefundStatus.CANCELED, Money(1_000, "USD"))


@pytest.mark.django_db
def test_the_poll_reads_a_canceled_refund_through_the_payments_refunds(stripe_sandbox, agent):
    """The same through the worker's poll (refund_sync_status): it passes the payment's id on,
    so the refund ends canceled instead of being polled for ever."""
    from refunds.models import RefundLog, RefundStatus  # the app's models, for this test only
    from refunds.services import execution, intake

    txn = stripe_sandbox.create_payment(3_000, behavior="stay_pending")
    filed, _ = intake.refund_request_create(
        merchant_refund_id=f"prism-poll-{txn[-8:]}", provider="prism_stripe", connector_transaction_id=txn,
        amount=Money(1_000, "USD"), reason="", metadata={}, product="", requested_by=agent,
    )
    submitted = execution.refund_submit(refund_id=filed.pk)
    assert submitted.status == RefundStatus.PROCESSING and submitted.connector_refund_id

    stripe_sandbox.settle(submitted.connector_refund_id, "canceled")
    polled = execution.refund_sync_status(refund_id=filed.pk)

    assert polled.status == RefundStatus.CANCELED
    assert not polled.logs.filter(event=RefundLog.Event.PROVIDER_ERROR).exists()
