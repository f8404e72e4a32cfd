"""Money typed into the support form: what a person types is read in their locale or refused
with an error saying what was understood; it never becomes a different amount."""

import pytest
from django.urls import reverse
from django.utils.html import strip_tags

from refunds.models import RefundRequest
from tests import factories
from tests.refund_form import confirmation_of, review_and_confirm

pytestmark = pytest.mark.django_db
NEW = reverse("refund-new")


@pytest.fixture
def eur_payment(stripe_sandbox):
    return stripe_sandbox.create_payment(15_000, currency="eur")


def form_data(client, pi, **overrides):
    page = client.get(NEW, {"provider": "stripe", "connector_transaction_id": pi})
    data = {
        "merchant_refund_id": page.context["form"].initial["merchant_refund_id"],
        "provider": "stripe",
        "connector_transaction_id": pi,
        "kind": "partial",
        "amount": "1.50",
        "reason_code": "product_return",
        "reason": "Arrived scratched",
        "product": "",
    }
    return {**data, **overrides}


def test_1_50_typed_in_english_is_not_filed_as_150_eur(client, agent, eur_payment):
    client.force_login(agent)

    page = client.post(NEW, form_data(client, eur_payment, amount="1,50"), HTTP_ACCEPT_LANGUAGE="en-US")

    assert page.status_code == 200 and "1,50" in page.content.decode()
    assert not RefundRequest.objects.exists()


def test_an_exponent_is_not_read_as_a_number(client, agent, eur_payment):
    client.force_login(agent)

    page = client.post(NEW, form_data(client, eur_payment, amount="1e1"))

    assert page.status_code == 200 and page.context["form"].errors["amount"]
    assert not RefundRequest.objects.exists()


def test_a_typed_amount_is_not_ignored_when_everything_is_chosen(client, agent, eur_payment):
    client.force_login(agent)

    page = client.post(NEW, form_data(client, eur_payment, kind="full", amount="5.00"))

    assert page.status_code == 200 and page.context["form"].errors
    assert not RefundRequest.objects.exists()


def test_no_choice_of_kind_is_an_error_and_the_form_starts_without_one(client, agent, eur_payment):
    client.force_login(agent)
    data = form_data(client, eur_payment, amount="5.00")
    assert client.get(NEW, {"provider": "stripe", "connector_transaction_id": eur_payment}).context["form"]["kind"].value() is None
    del data["kind"]

    page = client.post(NEW, data)

    assert page.context["form"].errors["kind"] == [
        "Choose one: everything still refundable, or part of it (then enter the amount)."
    ]
    assert not RefundRequest.objects.exists()


def test_the_confirmation_files_exactly_what_it_signed(client, agent, eur_payment):
    client.force_login(agent)
    review = client.post(NEW, form_data(client, eur_payment, amount="12.50"))
    assert "Refund 12.50 EUR of 150.00 EUR (refundable now 150.00 EUR)" in " ".join(strip_tags(review.content.decode()).split())
    confirm = confirmation_of(review)

    # The page's hidden copies of the typed values only refill the form on Back.
    filed = client.post(NEW, {**confirm, "amount": "149.00", "kind": "full"})
    tampered = client.post(NEW, {**confirm, "confirmation": confirm["confirmation"][:-2] + "xx"})

    assert filed.status_code == 302
    assert RefundRequest.objects.get().amount_minor == 1_250
    assert tampered.status_code == 200 and "expired or was changed" in tampered.content.decode()
    assert RefundRequest.objects.count() == 1


def test_another_user_cannot_use_a_confirmation(client, agent, eur_payment):
    client.force_login(agent)
    confirm = confirmation_of(client.post(NEW, form_data(client, eur_payment)))
    client.force_login(factories.agent(username="agent2"))

    page = client.post(NEW, confirm)

    assert page.status_code == 200 and "Nothing was filed" in page.content.decode()
    assert not RefundRequest.objects.exists()


def test_a_refused_confirmation_shows_the_form_as_typed(client, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000, currency="eur")
    client.force_login(agent)
    confirm = confirmation_of(client.post(NEW, form_data(client, pi, amount="80,00"), HTTP_ACCEPT_LANGUAGE="de"))
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": 5_000})

    page = client.post(NEW, confirm, HTTP_ACCEPT_LANGUAGE="de")

    html = page.content.decode()
    assert "Not filed: 80,00 EUR exceeds what remains refundable on the payment (50,00 EUR)." in html
    assert 'value="80,00"' in html
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize(
    ("language", "typed", "minor"),
    [("de", "1,50", 150), ("de-DE", "1.234,56", 123_456), ("ru", "1 234,56", 123_456), ("en-US", "1,234.56", 123_456)],
)
def test_the_browser_s_language_decides_the_notation(client, agent, stripe_sandbox, language, typed, minor):
    pi = stripe_sandbox.create_payment(200_000, currency="eur")
    client.force_login(agent)

    review = client.post(NEW, form_data(client, pi, amount=typed), HTTP_ACCEPT_LANGUAGE=language)
    client.post(NEW, confirmation_of(review), HTTP_ACCEPT_LANGUAGE=language)

    assert RefundRequest.objects.get().amount_minor == minor


def test_the_confirmation_counts_what_was_already_auto_approved_on_the_payment(client, agent, eur_payment,
                                                                              stripe_sandbox):
    """The threshold (50.00) bounds what is auto-approved on one payment: after 30.00 auto-approved,
    another 25.00 would pass alone but not together, and the confirmation says so before filing."""
    client.force_login(agent)
    first = review_and_confirm(client, NEW, form_data(client, eur_payment, amount="30.00"))
    assert first.status_code == 302
    assert RefundRequest.objects.get().status == "approved"

    other_payment = stripe_sandbox.create_payment(15_000, currency="eur")
    alone = client.post(NEW, form_data(client, other_payment, amount="25.00"))
    second = client.post(NEW, form_data(client, eur_payment, amount="25.00"))

    assert "will be executed at once" in alone.content.decode()
    assert "needs a finance manager's approval" in second.content.decode()
