"""Every approval policy rule, at the service level: thresholds per currency, approver limits,
tiers, maker-checker, one person counting once."""

import pytest
from django.contrib.auth.models import Group

from approvals.models import Approval, ApproverLimit, AutoApproveThreshold
from approvals.policy import approver_limit, auto_approve_threshold
from approvals.services import ALREADY_APPROVED, refund_approve, refund_reject
from refunds import errors
from refunds.models import RefundStatus
from refunds.roles import FINANCE_MANAGERS
from tests import factories
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db


def limit(holder, amount, currency=""):
    field = "group" if isinstance(holder, Group) else "user"
    return ApproverLimit.objects.update_or_create(**{field: holder}, currency=currency, defaults={"max_minor_amount": amount})


def test_threshold_from_the_database_wins_over_the_environment(settings):
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"USD": 5000}
    assert auto_approve_threshold("USD") == 5000
    AutoApproveThreshold.objects.create(currency="USD", max_minor_amount=2500)
    assert auto_approve_threshold("USD") == 2500
    assert auto_approve_threshold("JPY") == settings.REFUND_AUTO_APPROVE_DEFAULT


def test_finance_managers_start_with_the_default_limit(manager, settings):
    assert approver_limit(manager, "USD") == settings.REFUND_DEFAULT_APPROVER_LIMIT
    assert approver_limit(factories.agent(username="a2"), "USD") == 0


def test_a_currency_row_beats_the_any_currency_row_of_the_same_holder(manager):
    group = Group.objects.get(name=FINANCE_MANAGERS)
    limit(group, 100_000)
    limit(group, 20_000, "JPY")
    assert approver_limit(manager, "JPY") == 20_000
    assert approver_limit(manager, "EUR") == 100_000
    limit(manager, 500_000)  # a personal limit, higher than the group's
    assert approver_limit(manager, "JPY") == 500_000


def test_within_limit_one_approval_approves(manager, agent):
    refund = RefundFactory(requested_by=agent, amount_minor=90_000)
    result = refund_approve(refund_id=refund.pk, approver=manager, comment="fine")
    assert result.status == RefundStatus.APPROVED
    assert Approval.objects.get().limit_minor == 100_000


def test_above_the_limit_it_waits_for_a_higher_tier(manager, manager2, agent):
    director = factories.manager(username="director")
    limit(director, 1_000_000)
    refund = RefundFactory(requested_by=agent, amount_minor=250_000)

    first = refund_approve(refund_id=refund.pk, approver=manager, comment="checked the order")
    assert first.status == RefundStatus.PENDING_APPROVAL
    assert "needs an approver whose limit covers 2,500.00 USD" in first.logs.last().message
    second = refund_approve(refund_id=refund.pk, approver=manager2, comment="me too")
    assert second.status == RefundStatus.PENDING_APPROVAL  # two low limits do not add up
    final = refund_approve(refund_id=refund.pk, approver=director, comment="ok")

    assert final.status == RefundStatus.APPROVED
    assert list(refund.approvals.values_list("approver__username", "tier")) == [
        ("manager", 1), ("manager2", 2), ("director", 3),
    ]


def test_one_person_never_counts_twice(manager, agent):
    refund = RefundFactory(requested_by=agent, amount_minor=250_000)
    refund_approve(refund_id=refund.pk, approver=manager)
    with pytest.raises(errors.InvalidTransition) as again:
        refund_approve(refund_id=refund.pk, approver=manager)
    assert again.value.code == "already_approved"
    assert refund.approvals.count() == 1


def test_maker_checker_holds_at_every_tier(manager):
    director = factories.manager(username="director")
    limit(director, 1_000_000)
    own = RefundFactory(requested_by=director, amount_minor=250_000)
    refund_approve(refund_id=own.pk, approver=manager)
    with pytest.raises(errors.PermissionDenied) as denied:
        refund_approve(refund_id=own.pk, approver=director)
    assert denied.value.code == "self_approval_forbidden"
    with pytest.raises(errors.PermissionDenied):
        refund_reject(refund_id=own.pk, approver=director, comment="no")


def test_no_limit_in_the_currency_means_no_approval(agent):
    group = Group.objects.get(name=FINANCE_MANAGERS)
    ApproverLimit.objects.filter(group=group).delete()
    newcomer = factories.manager(username="newcomer")
    refund = RefundFactory(requested_by=agent)
    with pytest.raises(errors.PermissionDenied) as denied:
        refund_approve(refund_id=refund.pk, approver=newcomer)
    assert denied.value.code == "approval_limit_missing"
    assert not refund.approvals.exists()


def test_any_manager_may_reject_whatever_the_amount(manager, agent):
    refund = RefundFactory(requested_by=agent, amount_minor=10_000_000)
    assert refund_reject(refund_id=refund.pk, approver=manager, comment="not ours").status == RefundStatus.REJECTED


def test_auto_approval_names_the_currency_threshold_it_used(api, agent, settings, stripe_sandbox):
    settings.REFUND_AUTO_APPROVE_THRESHOLDS = {"EUR": 7000}
    settings.REFUND_AUTO_APPROVE_DEFAULT = 100
    pi = stripe_sandbox.create_payment(10_000, currency="eur")

    response = api(agent).post("/api/refunds/", {
        "merchant_refund_id": "eur-1", "connector_transaction_id": pi,
        "amount": {"minor_amount": 6000, "currency": "EUR"}, "reason": "Arrived broken",
    }, format="json")

    assert (response.status_code, response.json()["status"]) == (201, "approved")
    approval = Approval.objects.get()
    assert (approval.decision, approval.approver) == (Approval.Decision.AUTO_APPROVED, None)
    assert approval.comment == "At or under the auto-approve threshold of 70.00 EUR"
    log = approval.refund.logs.get(to_status="approved")
    assert (log.actor, log.message) == (None, "Auto-approved: at or under the threshold")


def test_the_log_says_who_approved_and_why(manager, agent):
    with_comment = RefundFactory(requested_by=agent, amount_minor=5_000)
    without = RefundFactory(requested_by=agent, amount_minor=5_000)

    refund_approve(refund_id=with_comment.pk, approver=manager, comment="receipt checked")
    refund_approve(refund_id=without.pk, approver=manager)

    log = with_comment.logs.get()
    assert (log.to_status, log.actor, log.message) == ("approved", manager, "Approved: receipt checked")
    log = without.logs.get()
    assert (log.to_status, log.actor, log.message) == ("approved", manager, "Approved")
    assert without.approvals.get().comment == ""


def test_a_lower_tier_approval_is_logged_under_its_approver(manager, agent):
    refund = RefundFactory(requested_by=agent, amount_minor=250_000)
    refund_approve(refund_id=refund.pk, approver=manager)
    note = refund.logs.get()
    assert (note.event, note.actor) == ("note", manager)
    assert note.message.startswith("Approved at tier 1 (limit 1,000.00 USD)")


def test_a_limit_equal_to_the_amount_covers_it(manager, agent):
    """The limit is the most one may approve alone: an amount exactly at it is approved."""
    refund = RefundFactory(requested_by=agent, amount_minor=100_000)
    assert refund_approve(refund_id=refund.pk, approver=manager).status == RefundStatus.APPROVED
    ApproverLimit.objects.filter(group=Group.objects.get(name=FINANCE_MANAGERS)).delete()
    tiny = factories.manager(username="tiny")
    limit(tiny, 1)  # the smallest limit there is still approves one minor unit
    cent = RefundFactory(requested_by=agent, amount_minor=1)
    assert refund_approve(refund_id=cent.pk, approver=tiny).status == RefundStatus.APPROVED


def test_the_approvers_limit_is_the_one_for_the_refunds_currency(manager, agent):
    group = Group.objects.get(name=FINANCE_MANAGERS)
    limit(group, 100_000)
    limit(group, 20_000, "JPY")
    refund = RefundFactory(requested_by=agent, amount_minor=50_000, currency="JPY")
    assert refund_approve(refund_id=refund.pk, approver=manager).status == RefundStatus.PENDING_APPROVAL
    assert refund.approvals.get().limit_minor == 20_000


def test_no_limit_message_names_the_currency(agent):
    ApproverLimit.objects.filter(group=Group.objects.get(name=FINANCE_MANAGERS)).delete()
    newcomer = factories.manager(username="newcomer")
    refund = RefundFactory(requested_by=agent, currency="EUR")
    with pytest.raises(errors.PermissionDenied) as denied:
        refund_approve(refund_id=refund.pk, approver=newcomer)
    assert str(denied.value) == "You have no approval limit for EUR."


def test_a_rejection_records_who_rejected_and_why(manager, agent):
    refund = RefundFactory(requested_by=agent)
    refund_reject(refund_id=refund.pk, approver=manager, comment="  outside the window  ")
    rejection = refund.approvals.get()
    assert (rejection.approver, rejection.decision, rejection.comment) == (
        manager, Approval.Decision.REJECTED, "outside the window",
    )


@pytest.mark.parametrize("comment", [None, "", "   "])
def test_a_rejection_without_a_reason_is_refused(manager, agent, comment):
    refund = RefundFactory(requested_by=agent)
    with pytest.raises(errors.RefundValidationError) as refused:
        refund_reject(refund_id=refund.pk, approver=manager, comment=comment)
    assert refused.value.code == "comment_required"
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL and not refund.approvals.exists()


def test_a_limit_in_another_currency_counts_for_nothing(manager):
    limit(manager, 500_000, "JPY")  # personal, but only for yen
    assert approver_limit(manager, "USD") == 100_000  # the group's any-currency default
    assert approver_limit(manager, "JPY") == 500_000


def test_a_lower_tier_note_reads_the_same_whatever_language_the_approver_uses(manager, agent):
    """The log is one record for everyone: a manager working in German writes its note in the
    stored text's English figures, not "1.000,00 USD"."""
    from django.utils import translation

    refund = RefundFactory(requested_by=agent, amount_minor=250_000)
    with translation.override("de"):
        refund_approve(refund_id=refund.pk, approver=manager)
    assert refund.logs.get().message == (
        "Approved at tier 1 (limit 1,000.00 USD); needs an approver whose limit covers 2,500.00 USD"
    )


def test_an_approver_of_a_lower_tier_may_not_then_reject(manager, manager2, agent):
    """Their approval was their decision: the rejection must come from someone else."""
    refund = RefundFactory(requested_by=agent, amount_minor=250_000)
    refund_approve(refund_id=refund.pk, approver=manager)

    with pytest.raises(errors.InvalidTransition) as again:
        refund_reject(refund_id=refund.pk, approver=manager, comment="changed my mind")

    assert (again.value.code, str(again.value)) == ("already_approved", ALREADY_APPROVED)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL
    assert list(refund.approvals.values_list("approver__username", "decision")) == [("manager", "approved")]
    refund_reject(refund_id=refund.pk, approver=manager2, comment="not covered")  # someone else may
    refund.refresh_from_db()
    assert refund.status == RefundStatus.REJECTED


def test_the_database_refuses_a_second_approval_by_one_person_with_the_same_answer(manager, agent, monkeypatch):
    """Two requests of one approver at once both pass the check before either writes (on
    PostgreSQL); the unique constraint stops the second, and the answer is the check's own."""
    refund = RefundFactory(requested_by=agent, amount_minor=250_000)
    refund_approve(refund_id=refund.pk, approver=manager)
    monkeypatch.setattr("approvals.services._check_decider", lambda **kwargs: None)  # as if it raced the first

    with pytest.raises(errors.InvalidTransition) as again:
        refund_approve(refund_id=refund.pk, approver=manager)

    assert (again.value.code, str(again.value)) == ("already_approved", ALREADY_APPROVED)
    assert refund.approvals.count() == 1 and refund.logs.count() == 1
