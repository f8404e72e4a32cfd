"""The support agent's pages: find the payment, file, follow; login and lockout."""

import pytest
from django.urls import reverse

from refunds.models import RefundRequest, RefundStatus
from tests.factories import RefundFactory
from tests.refund_form import confirmation_of, review_and_confirm

pytestmark = pytest.mark.django_db
NEW = reverse("refund-new")


@pytest.fixture
def payment(stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000, metadata={"product": "Desk lamp"})
    stripe_sandbox.client().v1.refunds.create(params={"payment_intent": pi, "amount": 2_000})
    return pi


def form_data(client, pi, **overrides):
    page = client.get(NEW, {"provider": "stripe", "connector_transaction_id": pi})
    form = page.context["form"]
    data = {
        "merchant_refund_id": form.initial["merchant_refund_id"],
        "provider": "stripe",
        "connector_transaction_id": pi,
        "kind": "partial",
        "amount": "75.00",
        "reason_code": "product_return",
        "reason": "Arrived scratched",
        "product": "Desk lamp",
    }
    data.update(overrides)
    return data


def test_pages_need_a_login(client):
    for url in (reverse("refund-list"), NEW, reverse("refund-detail", args=["x"])):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_lookup_shows_what_can_be_refunded_before_filing(client, agent, payment):
    client.force_login(agent)

    page = client.get(NEW, {"provider": "stripe", "connector_transaction_id": payment})

    html = page.content.decode()
    assert "120.00 USD" in html and "20.00 USD" in html and "100.00 USD" in html
    assert page.context["form"].initial["product"] == "Desk lamp"
    assert not RefundRequest.objects.exists()


def test_unknown_payment_is_a_field_error(client, agent):
    client.force_login(agent)
    page = client.get(NEW, {"provider": "stripe", "connector_transaction_id": "pi_nope123"})
    assert "knows no transaction" in page.content.decode() and page.context["form"] is None


def test_filing_a_partial_refund_above_the_threshold(client, agent, payment):
    client.force_login(agent)

    review = client.post(NEW, form_data(client, payment))
    assert not RefundRequest.objects.exists()  # nothing is filed before Confirm
    response = client.post(NEW, confirmation_of(review))

    refund = RefundRequest.objects.get()
    assert response.status_code == 302 and response.url == reverse("refund-detail", args=[refund.merchant_refund_id])
    assert (refund.amount_minor, refund.status, refund.requested_by) == (7_500, RefundStatus.PENDING_APPROVAL, agent)
    detail = client.get(response.url)
    assert '<meta http-equiv="refresh"' in detail.content.decode() and "Pending approval" in detail.content.decode()


def test_a_double_submit_files_once(client, agent, payment):
    client.force_login(agent)
    confirm = confirmation_of(client.post(NEW, form_data(client, payment)))

    first = client.post(NEW, confirm)
    second = client.post(NEW, confirm)

    assert first.url == second.url
    assert RefundRequest.objects.count() == 1


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("abc", "Enter an amount in USD"),
        ("-5", "Enter an amount in USD"),
        ("1.005", "USD has 2 decimal places."),
        ("100.01", "100.01 USD exceeds what remains refundable on the payment (100.00 USD)"),
    ],
)
def test_bad_amounts_are_form_errors_and_file_nothing(client, agent, payment, amount, error):
    client.force_login(agent)

    page = client.post(NEW, form_data(client, payment, amount=amount))

    assert page.status_code == 200 and error in page.content.decode()
    assert not RefundRequest.objects.exists()


def test_full_refund_takes_what_is_refundable(client, agent, payment):
    client.force_login(agent)
    review_and_confirm(client, NEW, form_data(client, payment, kind="full", amount=""))
    assert RefundRequest.objects.get().amount_minor == 10_000


def test_roles_that_cannot_file_do_not_get_the_form(client, accountant):
    client.force_login(accountant)
    assert client.get(NEW).status_code == 404


def test_my_requests_and_a_final_status_page(client, agent):
    done = RefundFactory(requested_by=agent, status=RefundStatus.SUCCEEDED, merchant_refund_id="done-1")
    client.force_login(agent)

    listing = client.get(reverse("refund-list")).content.decode()
    detail = client.get(reverse("refund-detail", args=[done.merchant_refund_id])).content.decode()

    assert "done-1" in listing and "Succeeded" in listing
    assert "Succeeded" in detail and 'http-equiv="refresh"' not in detail


def test_login_works_then_repeated_failures_lock_the_account(client, agent):
    url = reverse("login")
    ok = client.post(url, {"username": "agent", "password": "correct-horse-battery"})
    assert ok.status_code == 302 and client.session["_auth_user_id"] == str(agent.pk)
    client.logout()

    failures = [client.post(url, {"username": "agent", "password": "wrong"}).status_code for _ in range(5)]
    assert failures == [200, 200, 200, 200, 429]  # the fifth failure locks
    locked = client.post(url, {"username": "agent", "password": "correct-horse-battery"})

    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
