"""One contract for every provider adapter, each against its local emulator over HTTP.

A provider joins by adding a Harness below (how to make a payment at its emulator and force a
refund's outcome) and passing every test here unchanged.

A provider whose API can neither list a payment's refunds nor report its refunded sum
(Robokassa) says so with `lists_refunds = False`: its list_refunds refuses with
"lookup_unavailable", and instead of its refunded sum the contract checks that the provider
itself refuses a refund beyond what remains.

Every capability the core asks about is declared on the protocol (refunds/providers/base.py)
with a default, and every adapter subclasses it: nothing is found out with hasattr."""

import datetime
from dataclasses import dataclass
from typing import Callable

import pytest
from django.utils import timezone

from refunds.providers import get_provider, known_provider_names, provider_class
from tests.fixtures.prism import prism_sdk_or_skip
from refunds.providers.base import (
    LineItem,
    Money,
    PermanentProviderError,
    ProviderRefundStatus,
    RefundProvider,
    SoldPayment,
    TransactionNotFound,
    WebhookRejected,
)

CAPABILITIES = {
    "supports_items": bool,
    "item_tax_rates": tuple,
    "idempotent_create": bool,
    "lists_refunds": bool,
    "finds_refunds": bool,
    "lists_payments": bool,
    "receives_webhooks": bool,
}

FINAL = {ProviderRefundStatus.SUCCEEDED, ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED}


@dataclass
class Harness:
    name: str
    currency: str
    # pay(minor_amount, stays_pending) -> connector_transaction_id. With stays_pending, its
    # refunds stay pending until settle(); otherwise they succeed on their own.
    pay: Callable[[int, bool], str]
    # settle(connector_refund_id, succeed): force a pending refund to succeed or fail.
    settle: Callable[[str, bool], None]
    unknown_transaction_id: str


def _stripe(stripe_sandbox) -> Harness:
    return Harness(
        name="stripe",
        currency="USD",
        pay=lambda amount, stays: stripe_sandbox.create_payment(amount, behavior="stay_pending" if stays else None),
        settle=lambda refund_id, ok: stripe_sandbox.settle(refund_id, "succeeded" if ok else "failed"),
        unknown_transaction_id="pi_doesnotexist000000",
    )


def _robokassa(robokassa_sandbox) -> Harness:
    return Harness(
        name="robokassa",
        currency="RUB",
        pay=lambda amount, stays: robokassa_sandbox.create_payment(amount, behavior="stay" if stays else "finish"),
        settle=lambda refund_id, ok: robokassa_sandbox.settle(refund_id, "finished" if ok else "canceled"),
        unknown_transaction_id="2147480000",
    )


def _prism_stripe(stripe_sandbox) -> Harness:
    """Hyperswitch Prism's Stripe connector, pointed at the same sandbox (tests/conftest.py)."""
    prism_sdk_or_skip()
    return Harness(**{**vars(_stripe(stripe_sandbox)), "name": "prism_stripe"})


HARNESSES = {
    "stripe": ("stripe_sandbox", _stripe),
    "robokassa": ("robokassa_sandbox", _robokassa),
    "prism_stripe": ("stripe_sandbox", _prism_stripe),
}


@pytest.fixture(autouse=True)
def _prism_enabled(settings):
    """Prism's Stripe connector is enabled next to the others (its settings: tests/conftest.py)."""
    settings.REFUND_PROVIDERS = [*settings.REFUND_PROVIDERS, "prism_stripe"]


def test_every_provider_has_a_harness():
    assert sorted(HARNESSES) == known_provider_names()


@pytest.fixture(params=sorted(HARNESSES))
def harness(request) -> Harness:
    fixture, make = HARNESSES[request.param]
    return make(request.getfixturevalue(fixture))


@pytest.fixture
def adapter(harness):
    return get_provider(harness.name)


def lists_refunds(adapter) -> bool:
    return type(adapter).lists_refunds


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_capabilities_are_declared_on_the_protocol_with_defaults(name):
    if name.startswith("prism_"):
        prism_sdk_or_skip()
    cls = provider_class(name)
    assert RefundProvider in cls.__mro__  # subclassed, so the defaults below are inherited
    for capability, kind in CAPABILITIES.items():
        assert capability in vars(RefundProvider), f"{capability} is not declared on the protocol"
        assert isinstance(getattr(cls, capability), kind)
    # The cautious defaults: no items, no idempotency, no listing, no webhooks.
    assert {capability: getattr(RefundProvider, capability) for capability in CAPABILITIES} == {
        "supports_items": False,
        "item_tax_rates": (),
        "idempotent_create": False,
        "lists_refunds": False,
        "finds_refunds": False,
        "lists_payments": False,
        "receives_webhooks": False,
    }
    assert cls.supports_items == bool(cls.item_tax_rates)


def assert_nothing_more_refundable(adapter, harness, txn):
    with pytest.raises(PermanentProviderError) as raised:
        refund(adapter, harness, txn, 1)
    assert not isinstance(raised.value, TransactionNotFound)
    assert raised.value.http_status == 422 and raised.value.code and raised.value.message


def refund(adapter, harness, txn, minor=None, **extra):
    return adapter.create_refund(
        merchant_refund_id=f"contract-{txn[-12:]}-{minor}",
        connector_transaction_id=txn,
        amount=None if minor is None else Money(minor, harness.currency),
        reason="requested_by_customer",
        metadata={"ticket": "C-1"},
        idempotency_key=f"contract-{txn}-{minor}-{len(extra)}",
        **extra,
    )


def test_payment_amounts(adapter, harness):
    txn = harness.pay(12_345, False)

    info = adapter.get_payment(connector_transaction_id=txn)

    assert info.connector_transaction_id == txn
    assert info.amount == Money(12_345, harness.currency)
    assert (info.amount_refunded, info.refundable) == (0, 12_345)
    assert type(adapter).validate_transaction_id(txn) is None
    assert type(adapter).validate_transaction_id("not an id!")


def test_full_refund(adapter, harness):
    txn = harness.pay(5_000, False)

    result = refund(adapter, harness, txn)

    assert result.connector_refund_id
    assert result.status in {ProviderRefundStatus.PENDING, ProviderRefundStatus.SUCCEEDED}
    assert adapter.get_refund(connector_refund_id=result.connector_refund_id, connector_transaction_id=txn).amount == Money(
        5_000, harness.currency
    )
    if lists_refunds(adapter):
        info = adapter.get_payment(connector_transaction_id=txn)
        assert (info.amount_refunded, info.refundable) == (5_000, 0)
    assert_nothing_more_refundable(adapter, harness, txn)


def test_partial_refund_then_the_rest(adapter, harness):
    txn = harness.pay(5_000, False)

    first = refund(adapter, harness, txn, 1_550)
    info = adapter.get_payment(connector_transaction_id=txn)
    second = refund(adapter, harness, txn, 3_450)

    assert first.amount == Money(1_550, harness.currency)
    assert info.amount == Money(5_000, harness.currency)
    if lists_refunds(adapter):
        assert (info.amount_refunded, info.refundable) == (1_550, 3_450)
        assert adapter.get_payment(connector_transaction_id=txn).refundable == 0
    assert second.amount == Money(3_450, harness.currency)
    assert_nothing_more_refundable(adapter, harness, txn)


def test_over_refund_is_a_permanent_amount_error(adapter, harness):
    txn = harness.pay(2_000, False)
    refund(adapter, harness, txn, 1_500)

    with pytest.raises(PermanentProviderError) as raised:
        refund(adapter, harness, txn, 501)

    assert not isinstance(raised.value, TransactionNotFound)
    assert raised.value.http_status == 422 and raised.value.code and raised.value.message
    if lists_refunds(adapter):
        assert adapter.get_payment(connector_transaction_id=txn).amount_refunded == 1_500
    refund(adapter, harness, txn, 500)  # what remains is still refundable


def test_unknown_transaction(adapter, harness):
    with pytest.raises(TransactionNotFound):
        adapter.get_payment(connector_transaction_id=harness.unknown_transaction_id)
    with pytest.raises(TransactionNotFound):
        refund(adapter, harness, harness.unknown_transaction_id, 100)


def test_pending_refund_becomes_final(adapter, harness):
    txn = harness.pay(3_000, True)
    created = refund(adapter, harness, txn, 1_000)
    assert created.status == ProviderRefundStatus.PENDING
    assert adapter.get_refund(connector_refund_id=created.connector_refund_id, connector_transaction_id=txn).status == (
        ProviderRefundStatus.PENDING
    )

    harness.settle(created.connector_refund_id, True)
    final = adapter.get_refund(connector_refund_id=created.connector_refund_id, connector_transaction_id=txn)

    assert (final.connector_refund_id, final.status, final.amount) == (
        created.connector_refund_id,
        ProviderRefundStatus.SUCCEEDED,
        Money(1_000, harness.currency),
    )


def test_refund_that_fails_at_the_provider(adapter, harness):
    txn = harness.pay(3_000, True)
    created = refund(adapter, harness, txn, 1_000)

    harness.settle(created.connector_refund_id, False)
    final = adapter.get_refund(connector_refund_id=created.connector_refund_id, connector_transaction_id=txn)

    assert final.status in {ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED}
    assert final.failure_code


def test_list_refunds(adapter, harness):
    txn = harness.pay(9_000, True)
    if not lists_refunds(adapter):
        refund(adapter, harness, txn, 1_000)
        with pytest.raises(PermanentProviderError) as raised:
            adapter.list_refunds(connector_transaction_id=txn)
        assert raised.value.code == "lookup_unavailable" and raised.value.message
        return
    made = [refund(adapter, harness, txn, minor) for minor in (1_000, 2_500)]
    harness.settle(made[0].connector_refund_id, True)

    listed = {r.connector_refund_id: r for r in adapter.list_refunds(connector_transaction_id=txn)}

    assert set(listed) == {r.connector_refund_id for r in made}
    assert listed[made[0].connector_refund_id].amount == Money(1_000, harness.currency)
    assert listed[made[0].connector_refund_id].status == ProviderRefundStatus.SUCCEEDED
    assert listed[made[1].connector_refund_id].status == ProviderRefundStatus.PENDING
    assert all(r.connector_transaction_id == txn for r in listed.values())
    assert adapter.list_refunds(connector_transaction_id=harness.pay(100, False)) == []


def test_find_refund_by_our_merchant_refund_id(adapter, harness):
    txn = harness.pay(9_000, False)
    if not type(adapter).finds_refunds:
        with pytest.raises(PermanentProviderError) as raised:
            adapter.find_refund(merchant_refund_id="contract-none", connector_transaction_id=txn)
        assert raised.value.code == "lookup_unavailable" and raised.value.message
        return
    assert adapter.find_refund(merchant_refund_id=f"contract-{txn[-12:]}-1000", connector_transaction_id=txn) is None
    made = [refund(adapter, harness, txn, minor) for minor in (1_000, 2_500)]

    found = adapter.find_refund(merchant_refund_id=f"contract-{txn[-12:]}-2500", connector_transaction_id=txn)

    assert found is not None and found.connector_refund_id == made[1].connector_refund_id
    assert (found.amount, found.merchant_refund_id) == (Money(2_500, harness.currency), f"contract-{txn[-12:]}-2500")
    assert adapter.find_refund(merchant_refund_id="contract-other", connector_transaction_id=txn) is None


def test_items(adapter, harness):
    txn = harness.pay(10_000, False)
    items = [LineItem("Mug", 2, Money(1_250, harness.currency), (type(adapter).item_tax_rates or ("none",))[0])]

    if not type(adapter).supports_items:
        with pytest.raises(PermanentProviderError) as raised:
            refund(adapter, harness, txn, 2_500, items=items)
        assert raised.value.code == "items_not_supported"
        assert adapter.list_refunds(connector_transaction_id=txn) == []
        return
    result = refund(adapter, harness, txn, 2_500, items=items)
    assert result.amount == Money(2_500, harness.currency)
    assert adapter.get_refund(connector_refund_id=result.connector_refund_id, connector_transaction_id=txn).amount == (
        Money(2_500, harness.currency)
    )
    if lists_refunds(adapter):
        assert adapter.get_payment(connector_transaction_id=txn).amount_refunded == 2_500


def test_list_payments(adapter, harness):
    txn = harness.pay(4_200, False)
    now = timezone.now()
    window = {"created_gte": now - datetime.timedelta(minutes=5), "created_lt": now + datetime.timedelta(minutes=5)}
    if not type(adapter).lists_payments:
        with pytest.raises(PermanentProviderError) as raised:
            list(adapter.list_payments(**window))
        assert raised.value.code == "lookup_unavailable" and raised.value.message
        return
    requests = []

    listed = {p.connector_transaction_id: p for p in adapter.list_payments(**window, before_request=lambda: requests.append(1))}

    assert isinstance(listed[txn], SoldPayment) and listed[txn].amount == Money(4_200, harness.currency)
    assert requests  # every page books the rate limiter first


def test_an_unverified_webhook_is_never_taken(adapter, harness):
    with pytest.raises(WebhookRejected) as raised:
        adapter.parse_webhook(payload=b'{"id": "evt_1", "type": "refund.updated"}', headers={})

    # A provider that sends webhooks rejects it (400, or 503 while it has no secret); one that
    # sends none has no such endpoint.
    expected = {400, 503} if type(adapter).receives_webhooks else {404}
    assert raised.value.http_status in expected and raised.value.code and raised.value.message
