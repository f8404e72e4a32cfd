"""The support form's invoice items: offered only where the provider takes them, checked row by
row and against the amount, filed with the refund; nothing is filed while anything is wrong."""

import pytest
from django.urls import reverse

from refunds.models import RefundRequest, RefundStatus
from tests.refund_form import confirmation_of, review_and_confirm

pytestmark = pytest.mark.django_db
NEW = reverse("refund-new")


@pytest.fixture
def invoice_id(robokassa_sandbox):
    return robokassa_sandbox.create_payment(10_000, behavior="stay", description="Tea set")


def lookup(client, invoice_id):
    return client.get(NEW, {"provider": "robokassa", "connector_transaction_id": invoice_id})


def form_data(page, invoice_id, rows=(), **overrides):
    data = {
        "merchant_refund_id": page.context["form"].initial["merchant_refund_id"],
        "provider": "robokassa",
        "connector_transaction_id": invoice_id,
        "kind": "partial",
        "amount": "27.00",
        "reason_code": "product_return",
        "reason": "Arrived broken",
        "product": "Tea set",
        "items-TOTAL_FORMS": "3",
        "items-INITIAL_FORMS": "3",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "20",
    }
    for index in range(3):
        row = rows[index] if index < len(rows) else ("", "", "", "none")
        data.update(zip((f"items-{index}-{f}" for f in ("name", "quantity", "cost", "tax")), row))
    data.update(overrides)
    return data


ROWS = (("Teapot", "1", "15.00", "vat20"), ("Cup", "2", "6.00", "none"))


def test_items_are_offered_only_where_the_provider_takes_them(client, agent, invoice_id, stripe_sandbox):
    client.force_login(agent)

    robokassa = lookup(client, invoice_id)
    stripe = client.get(NEW, {"provider": "stripe", "connector_transaction_id": stripe_sandbox.create_payment(5_000)})

    html = robokassa.content.decode()
    assert html.count('data-testid="item-row"') == 3 and "Invoice items" in html
    assert '<option value="vat20">VAT 20%</option>' in html and '<option value="vat120">VAT 20/120</option>' in html and 'aria-label="Item, row 1"' in html
    assert robokassa.context["preview"].product == "Tea set"
    assert "Invoice items" not in stripe.content.decode() and stripe.context["form"].items is None


def test_a_partial_refund_by_items_is_filed_with_them(client, agent, invoice_id):
    client.force_login(agent)
    page = lookup(client, invoice_id)

    response = review_and_confirm(client, NEW, form_data(page, invoice_id, ROWS))

    refund = RefundRequest.objects.get()
    assert response.status_code == 302, response.context["form"].errors
    assert (refund.amount_minor, refund.currency, refund.status) == (2_700, "RUB", RefundStatus.APPROVED)  # under the threshold
    assert refund.items == [
        {"name": "Teapot", "quantity": 1, "cost": {"minor_amount": 1_500, "currency": "RUB"}, "tax": "vat20"},
        {"name": "Cup", "quantity": 2, "cost": {"minor_amount": 600, "currency": "RUB"}, "tax": "none"},
    ]


def test_a_full_refund_by_items_must_cover_what_is_refundable(client, agent, invoice_id):
    client.force_login(agent)
    page = lookup(client, invoice_id)

    short = client.post(NEW, form_data(page, invoice_id, ROWS, kind="full", amount=""))
    whole = review_and_confirm(client, NEW, form_data(page, invoice_id, (("Tea set", "1", "100.00", "vat20"),),
                                                      kind="full", amount=""))

    assert short.status_code == 200
    assert "The items add up to 27.00 RUB, not what is refundable now (100.00 RUB)" in short.content.decode()
    assert whole.status_code == 302
    assert RefundRequest.objects.get().amount_minor == 10_000


@pytest.mark.parametrize(
    ("rows", "amount", "message"),
    [
        (ROWS, "20.00", "The items add up to 27.00 RUB, not the amount (20.00 RUB)"),
        ((("", "1", "15.00", "vat20"),), "15.00", "Name the item."),
        ((("Teapot", "", "15.00", "vat20"),), "15.00", "How many? 1 or more."),
        ((("Teapot", "0", "15.00", "vat20"),), "15.00", "greater than or equal to 1"),
        ((("Teapot", "1", "15.005", "vat20"),), "15.00", "RUB has 2 decimal places."),
        ((("Teapot", "1", "free", "vat20"),), "15.00", "Enter an amount in RUB greater than zero"),
        ((("Teapot", "1", "15.00", "vat99"),), "15.00", "Select a valid choice"),
    ],
)
def test_bad_items_are_clear_errors_and_file_nothing(client, agent, invoice_id, robokassa_sandbox, rows, amount,
                                                     message):
    client.force_login(agent)
    page = lookup(client, invoice_id)
    data = form_data(page, invoice_id, rows, amount=amount)

    response = client.post(NEW, data)

    html = response.content.decode()
    assert response.status_code == 200 and message in html
    assert f'value="{rows[0][2]}"' in html  # what was typed is kept
    assert not RefundRequest.objects.exists()
    assert robokassa_sandbox.payment(invoice_id)["refunds"] == []


def test_add_a_row_keeps_what_was_typed_and_files_nothing(client, agent, invoice_id):
    client.force_login(agent)
    page = lookup(client, invoice_id)
    data = form_data(page, invoice_id, ROWS, reason="", add_item="1")

    response = client.post(NEW, data)

    html = response.content.decode()
    assert response.status_code == 200 and html.count('data-testid="item-row"') == 4
    assert 'value="Teapot"' in html and 'value="6.00"' in html and 'value="27.00"' in html
    assert "This field is required" not in html and 'data-testid="items-errors"' not in html
    assert not RefundRequest.objects.exists()
    filed = review_and_confirm(client, NEW, {**form_data(page, invoice_id, ROWS), "items-TOTAL_FORMS": "4",
                                             "items-3-name": "", "items-3-quantity": "", "items-3-cost": "",
                                             "items-3-tax": "none"})
    assert filed.status_code == 302 and RefundRequest.objects.get().amount_minor == 2_700


def test_prices_are_read_in_the_browser_s_language_and_back_keeps_the_rows(client, agent, invoice_id):
    client.force_login(agent)
    page = lookup(client, invoice_id)
    german = (("Teapot", "1", "15,00", "vat20"), ("Cup", "2", "6,00", "none"))
    data = form_data(page, invoice_id, german, amount="27,00")

    review = client.post(NEW, data, HTTP_ACCEPT_LANGUAGE="de")
    confirm = confirmation_of(review)
    back = client.post(NEW, {**{k: v for k, v in confirm.items() if k != "confirm"}, "back": "1"},
                       HTTP_ACCEPT_LANGUAGE="de")
    english = client.post(NEW, form_data(page, invoice_id, german, amount="27.00"), HTTP_ACCEPT_LANGUAGE="en-US")

    html = back.content.decode()
    assert 'value="Teapot"' in html and 'value="15,00"' in html and 'value="6,00"' in html and 'value="27,00"' in html
    assert "It could be 1,500.00 RUB or 15.00 RUB" in english.content.decode()
    assert not RefundRequest.objects.exists()
    client.post(NEW, confirm, HTTP_ACCEPT_LANGUAGE="de")
    refund = RefundRequest.objects.get()
    assert [(item["name"], item["cost"]["minor_amount"]) for item in refund.items] == [("Teapot", 1_500), ("Cup", 600)]
    assert refund.amount_minor == 2_700
