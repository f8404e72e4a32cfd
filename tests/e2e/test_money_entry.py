"""Money typed into the support form in Chromium, in the browser's language (en-US, de-DE,
ru-RU; the app follows Accept-Language): what people type is filed as the amount they meant, or
refused saying what was understood; nothing is filed before the confirmation page's Confirm, and
a double click files once. Each test checks the money filed (RefundRequest rows) or moved (the
Stripe sandbox's refunds)."""

import re

import pytest

from refunds.models import RefundRequest
from tests import factories
from tests.fixtures.browser import SHOTS
from tests.fixtures.worker import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
NBSP = "\u00a0"


@pytest.fixture
def agent(db):
    return factories.agent(username="agent")


def look_up(page, pi):
    page.goto("/refunds/new")
    page.get_by_label("Transaction id").fill(pi)
    page.get_by_role("button", name="Look up").click()
    page.get_by_test_id("payment-refundable").wait_for()


def fill(page, currency, amount, *, kind="Part of it", note="Arrived scratched"):
    if kind:
        page.get_by_label(kind).check()
    page.get_by_label(f"Amount ({currency})").fill(amount)
    page.get_by_label("Reason code").select_option("product_return")
    page.get_by_label("Note").fill(note)


def review(page):
    page.get_by_role("button", name="Review refund").click()


def confirm(page):
    page.get_by_role("button", name="Confirm refund").click()
    page.wait_for_url(re.compile(r"/refunds/web-"))
    return RefundRequest.objects.get(merchant_refund_id=page.url.rsplit("/", 1)[1])


def stripe_refunds(stripe_sandbox, pi):
    return [(r.amount, r.currency) for r in stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data]


def test_1_50_in_german_is_one_euro_fifty_confirmed_then_refunded(live_worker, login, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(15_000, currency="eur")
    page = login(agent, "/refunds/new", locale="de-DE")
    look_up(page, pi)
    assert page.get_by_test_id("payment-amount").inner_text() == "150,00 EUR"

    fill(page, "EUR", "1,50")
    page.screenshot(path=SHOTS / "money-1-form-de.png", full_page=True)
    review(page)

    summary = page.get_by_test_id("confirm-summary").inner_text()
    assert "Refund 1,50 EUR of 150,00 EUR (refundable now 150,00 EUR)" in summary
    assert "will be executed at once" in summary  # under the auto-approve threshold (the policy says)
    page.screenshot(path=SHOTS / "money-2-confirm-de.png", full_page=True)
    assert not RefundRequest.objects.exists()
    refund = confirm(page)

    assert (refund.amount_minor, refund.currency) == (150, "EUR")
    wait_until(lambda: stripe_refunds(stripe_sandbox, pi), timeout=45, message="the refund at Stripe")
    assert stripe_refunds(stripe_sandbox, pi) == [(150, "eur")]


def test_1_50_in_english_is_an_error_saying_what_was_understood(login, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(15_000, currency="eur")
    page = login(agent, "/refunds/new", locale="en-US")
    look_up(page, pi)

    fill(page, "EUR", "1,50")
    review(page)

    error = page.get_by_test_id("amount-errors").inner_text()
    assert "“1,50” is not an amount in English (United States) notation" in error
    assert "It could be 150.00 EUR or 1.50 EUR" in error
    assert page.get_by_label("Amount (EUR)").input_value() == "1,50"  # kept as typed
    page.screenshot(path=SHOTS / "money-3-error-en.png", full_page=True)
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize(
    ("locale", "currency", "payment", "typed", "minor", "shown"),
    [
        ("de-DE", "EUR", 200_000, "1.234,56", 123_456, "1.234,56 EUR"),
        ("ru-RU", "RUB", 200_000, "1 234,56", 123_456, f"1{NBSP}234,56 RUB"),
        ("ru-RU", "RUB", 200_000, f"1{NBSP}234,56", 123_456, f"1{NBSP}234,56 RUB"),
        ("en-US", "EUR", 15_000, "€1.50", 150, "1.50 EUR"),
        ("en-US", "USD", 200_000, "1,234.56", 123_456, "1,234.56 USD"),
    ],
)
def test_amounts_typed_the_local_way_are_filed_as_meant(login, agent, stripe_sandbox, locale, currency, payment,
                                                        typed, minor, shown):
    pi = stripe_sandbox.create_payment(payment, currency=currency.lower())
    page = login(agent, "/refunds/new", locale=locale)
    look_up(page, pi)

    fill(page, currency, typed)
    review(page)

    assert page.get_by_test_id("confirm-amount").inner_text() == shown
    if locale == "ru-RU" and NBSP not in typed:
        page.screenshot(path=SHOTS / "money-4-confirm-ru.png", full_page=True)
    refund = confirm(page)
    assert (refund.amount_minor, refund.currency) == (minor, currency)


def test_what_is_not_an_amount_is_refused_and_nothing_is_filed(login, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(15_000, currency="eur")
    page = login(agent, "/refunds/new", locale="en-US")
    look_up(page, pi)
    fill(page, "EUR", "")
    refusals = {
        "1e1": "scientific notation, which is not taken",
        "-5": "without a sign",
        "5.555": "EUR has 2 decimal places. “5.555” has 3 digits after the “.”",
        "$5": "“$” is another currency's sign; this payment is in EUR",
        "1e999999": "scientific notation",
        "150.01": "150.01 EUR exceeds what remains refundable on the payment (150.00 EUR)",
        "0": "greater than zero",
    }
    for typed, says in refusals.items():
        page.get_by_label("Amount (EUR)").fill(typed)
        review(page)
        assert says in page.get_by_test_id("amount-errors").inner_text(), typed
        assert page.get_by_label("Amount (EUR)").input_value() == typed
    page.screenshot(path=SHOTS / "money-5-refused.png", full_page=True)
    assert not RefundRequest.objects.exists()
    assert stripe_refunds(stripe_sandbox, pi) == []


def test_the_refund_kind_has_no_default_and_everything_plus_an_amount_is_an_error(login, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(2_500, currency="usd")
    page = login(agent, "/refunds/new")
    look_up(page, pi)
    assert not page.get_by_label("Everything still refundable").is_checked()
    assert not page.get_by_label("Part of it").is_checked()

    fill(page, "USD", "5.00", kind=None)
    review(page)
    # The browser itself asks for a choice (the radios are required); the server says so too
    # (tests/refunds/test_money_entry.py).
    assert page.get_by_label("Part of it").evaluate("radio => radio.validationMessage")
    assert page.get_by_test_id("confirmation").count() == 0

    page.get_by_label("Everything still refundable").check()
    review(page)
    error = page.get_by_test_id("amount-errors").inner_text()
    assert "You chose “Everything still refundable” and also entered 5.00 USD" in error
    page.screenshot(path=SHOTS / "money-6-kind-conflict.png", full_page=True)
    assert not RefundRequest.objects.exists()

    page.get_by_label("Part of it").check()
    review(page)
    assert (confirm(page).amount_minor, RefundRequest.objects.count()) == (500, 1)  # 5.00 USD, not 25.00


def test_back_from_the_confirmation_keeps_what_was_typed(login, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(20_000, currency="eur")
    page = login(agent, "/refunds/new", locale="de-DE")
    look_up(page, pi)
    fill(page, "EUR", "12,50", note="Lid cracked")
    review(page)
    assert page.get_by_test_id("confirm-amount").inner_text() == "12,50 EUR"

    page.get_by_role("button", name="Back").click()

    assert page.get_by_label("Amount (EUR)").input_value() == "12,50"
    assert page.get_by_label("Part of it").is_checked()
    assert page.get_by_label("Note").input_value() == "Lid cracked"
    assert page.get_by_label("Reason code").input_value() == "product_return"
    assert not RefundRequest.objects.exists()
    page.get_by_label("Amount (EUR)").fill("10,00")
    review(page)
    assert page.get_by_test_id("confirm-amount").inner_text() == "10,00 EUR"
    assert (confirm(page).amount_minor, RefundRequest.objects.count()) == (1_000, 1)


@pytest.mark.parametrize("javascript", [True, False])
def test_a_double_click_on_confirm_files_and_refunds_once(live_worker, login, agent, stripe_sandbox, javascript):
    pi = stripe_sandbox.create_payment(20_000, currency="usd")
    page = login(agent, "/refunds/new", javascript=javascript)
    look_up(page, pi)
    fill(page, "USD", "30.00")
    review(page)

    page.get_by_role("button", name="Confirm refund").dblclick()
    page.wait_for_url(re.compile(r"/refunds/web-"))

    refund = RefundRequest.objects.get()
    assert refund.amount_minor == 3_000
    page.get_by_test_id("status").filter(has_text="Succeeded").wait_for(timeout=45_000)
    assert stripe_refunds(stripe_sandbox, pi) == [(3_000, "usd")]
