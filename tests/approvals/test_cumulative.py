"""The auto-approve threshold bounds what is auto-refunded on one payment in total (and, when
REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY is on, per customer per business day), not only each
refund alone: small refunds cannot add up to a whole payment without a manager."""

import pytest

from approvals.models import Approval
from approvals.services import refund_approve
from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.services.execution import refund_cancel
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _usd_threshold(settings):
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 5000}


def file(api, user, pi, merchant_refund_id, minor_amount):
    response = api(user).post(
        "/api/refunds/",
        {
            "merchant_refund_id": merchant_refund_id,
            "connector_transaction_id": pi,
            "amount": {"minor_amount": minor_amount, "currency": "USD"},
            "reason": "Arrived broken",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def pk(merchant_refund_id):
    return RefundRequest.objects.get(merchant_refund_id=merchant_refund_id).pk


def test_three_small_refunds_on_one_payment_are_not_all_auto_approved(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)

    statuses = [file(api, agent, pi, f"split-{i}", 4_000)["status"] for i in range(3)]

    assert statuses == ["approved", "pending_approval", "pending_approval"]
    assert Approval.objects.filter(decision=Approval.Decision.AUTO_APPROVED).count() == 1
    second = RefundRequest.objects.get(merchant_refund_id="split-1")
    note = second.logs.get(event=RefundLog.Event.NOTE)
    assert [(log.event, log.to_status) for log in second.logs.all()] == [("requested", "pending_approval"), ("note", "")]
    assert note.message == (
        "Waits for a finance manager: auto-approved refunds on this payment would reach 80.00 USD, "
        "over the 50.00 USD threshold"
    )
    assert (note.actor, note.data) == (None, {"auto_approve": "refused"})


def test_another_agent_cannot_add_to_what_was_auto_approved_on_the_payment(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)
    colleague = factories.agent(username="colleague")

    assert file(api, agent, pi, "mine", 3_000)["status"] == "approved"
    assert file(api, colleague, pi, "theirs", 3_000)["status"] == "pending_approval"


def test_refunds_up_to_the_threshold_in_total_are_auto_approved(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)

    statuses = [file(api, agent, pi, f"fits-{i}", amount)["status"] for i, amount in enumerate([2_000, 3_000, 1])]

    assert statuses == ["approved", "approved", "pending_approval"]


def test_a_canceled_auto_approved_refund_no_longer_counts(api, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)
    assert file(api, agent, pi, "first", 4_000)["status"] == "approved"
    refund_cancel(refund_id=pk("first"), actor=manager, comment="wrong order")

    assert file(api, agent, pi, "second", 4_000)["status"] == "approved"


def test_refunds_a_manager_approved_do_not_use_up_the_auto_approval(api, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(12_000)
    assert file(api, agent, pi, "large", 8_000)["status"] == "pending_approval"
    assert refund_approve(refund_id=pk("large"), approver=manager).status == RefundStatus.APPROVED

    assert file(api, agent, pi, "small", 4_000)["status"] == "approved"


def test_per_customer_per_day_is_off_by_default(api, agent, stripe_sandbox):
    customer = stripe_sandbox.create_customer()
    one, two = (stripe_sandbox.create_payment(12_000, customer=customer) for _ in range(2))

    assert [file(api, agent, pi, f"r-{i}", 4_000)["status"] for i, pi in enumerate((one, two))] == [
        "approved", "approved",
    ]


def test_per_customer_per_day_bounds_a_customers_payments_together(api, agent, settings, stripe_sandbox):
    settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = True
    same, other = stripe_sandbox.create_customer(), stripe_sandbox.create_customer("other@example.com")
    one, two = (stripe_sandbox.create_payment(12_000, customer=same) for _ in range(2))
    elsewhere = stripe_sandbox.create_payment(12_000, customer=other)

    statuses = [file(api, agent, pi, f"r-{i}", 4_000)["status"] for i, pi in enumerate((one, two, elsewhere))]

    assert statuses == ["approved", "pending_approval", "approved"]
    note = RefundRequest.objects.get(merchant_refund_id="r-1").logs.get(event=RefundLog.Event.NOTE)
    assert note.message == (
        f"Waits for a finance manager: auto-approved refunds for customer {same} today would reach "
        "80.00 USD, over the 50.00 USD threshold"
    )


def test_per_customer_per_day_ignores_payments_without_a_customer(api, agent, settings, stripe_sandbox):
    settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = True
    one, two = (stripe_sandbox.create_payment(12_000) for _ in range(2))

    assert [file(api, agent, pi, f"r-{i}", 4_000)["status"] for i, pi in enumerate((one, two))] == [
        "approved", "approved",
    ]


def test_per_customer_per_day_counts_today_only(api, agent, settings, stripe_sandbox):
    """What the customer got back automatically yesterday does not use up today's threshold."""
    from datetime import timedelta

    from refunds.reports.calendar import business_today, day_start

    settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = True
    customer = stripe_sandbox.create_customer()
    yesterday, today = (stripe_sandbox.create_payment(12_000, customer=customer) for _ in range(2))
    assert file(api, agent, yesterday, "r-yesterday", 4_000)["status"] == "approved"
    Approval.objects.filter(refund__merchant_refund_id="r-yesterday").update(
        created_at=day_start(business_today()) - timedelta(hours=1)
    )

    assert file(api, agent, today, "r-today", 4_000)["status"] == "approved"


def test_per_customer_per_day_admits_a_total_exactly_at_the_threshold(api, agent, settings, stripe_sandbox):
    settings.REFUND_AUTO_APPROVE_PER_CUSTOMER_DAY = True
    customer = stripe_sandbox.create_customer()
    one, two = (stripe_sandbox.create_payment(12_000, customer=customer) for _ in range(2))

    assert [file(api, agent, one, "r-0", 3_000)["status"], file(api, agent, two, "r-1", 2_000)["status"]] == [
        "approved", "approved",  # 50.00 USD today: at the threshold, not over it
    ]


def test_the_note_reads_the_same_whatever_the_filer_s_language(api, agent, stripe_sandbox):
    """Why a refund waits is stored text: English figures though the agent files in German."""
    pi = stripe_sandbox.create_payment(12_000)
    file(api, agent, pi, "de-0", 4_000)

    response = api(agent).post(
        "/api/refunds/",
        {"merchant_refund_id": "de-1", "connector_transaction_id": pi, "amount": {"minor_amount": 4_000, "currency": "USD"}},
        format="json", HTTP_ACCEPT_LANGUAGE="de-DE",
    )

    assert response.status_code == 201 and response.json()["status"] == "pending_approval"
    note = RefundRequest.objects.get(merchant_refund_id="de-1").logs.get(event=RefundLog.Event.NOTE)
    assert note.message == (
        "Waits for a finance manager: auto-approved refunds on this payment would reach 80.00 USD, "
        "over the 50.00 USD threshold"
    )
