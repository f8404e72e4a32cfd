"""Money typed into the support form: what a person types is read in their locale or refused
with an error saying what was understood; it never becomes a different amount."""

import pytest
from django.urls import reverse

from refunds.models import RefundRequest

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
