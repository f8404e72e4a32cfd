"""The admin as finance managers and agents use it."""

import pytest
from django.urls import reverse

from refunds.models import RefundStatus
from tests import factories
from tests.factories import RefundFactory
from tests.second_factor import force_login_confirmed

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:refunds_refundrequest_changelist")


def test_changelist_filters_and_search(client, manager):
    RefundFactory(merchant_refund_id="usd-one", product="Mug")
    RefundFactory(merchant_refund_id="eur-one", currency="EUR", status=RefundStatus.SUCCEEDED)
    client.force_login(manager)

    everything = client.get(CHANGELIST)
    eur = client.get(CHANGELIST, {"currency": "EUR"})
    searched = client.get(CHANGELIST, {"q": "usd-one"})

    assert everything.status_code == 200
    assert b"usd-one" in everything.content and b"eur-one" in everything.content
    assert b"usd-one" not in eur.content and b"eur-one" in eur.content
    assert b"usd-one" in searched.content and b"eur-one" not in searched.content


def test_agent_sees_only_own_refunds_and_no_approve_action(client, agent):
    RefundFactory(merchant_refund_id="mine", requested_by=agent)
    RefundFactory(merchant_refund_id="theirs", requested_by=factories.agent(username="other"))
    client.force_login(agent)

    page = client.get(CHANGELIST)

    assert b"mine" in page.content and b"theirs" not in page.content
    assert b"approve_selected" not in page.content


def test_approve_action_confirms_then_approves(client, manager, agent):
    a = RefundFactory(requested_by=agent, amount_minor=6000)
    b = RefundFactory(requested_by=agent, amount_minor=7000)
    force_login_confirmed(client, manager)
    selection = {"action": "approve_selected", "_selected_action": [a.pk, b.pk]}

    confirm = client.post(CHANGELIST, selection)
    assert confirm.status_code == 200
    assert b"130.00 USD" in confirm.content  # the total of the selected rows
    a.refresh_from_db()
    assert a.status == RefundStatus.PENDING_APPROVAL  # nothing happens before confirmation

    done = client.post(CHANGELIST, {**selection, "confirm": "yes", "comment": "batch ok"}, follow=True)

    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == (RefundStatus.APPROVED, RefundStatus.APPROVED)
    assert {str(m) for m in done.context["messages"]} == {f"Refund {a}: approved", f"Refund {b}: approved"}


def test_reject_action_needs_a_reason_and_reports_per_row(client, manager):
    own = RefundFactory(requested_by=manager)
    other = RefundFactory()
    force_login_confirmed(client, manager)
    selection = {"action": "reject_selected", "_selected_action": [own.pk, other.pk], "confirm": "yes"}

    no_reason = client.post(CHANGELIST, {**selection, "comment": ""}, follow=True)
    other.refresh_from_db()
    assert other.status == RefundStatus.PENDING_APPROVAL
    assert "A reason is required." in [str(m) for m in no_reason.context["messages"]]

    done = client.post(CHANGELIST, {**selection, "comment": "duplicate request"}, follow=True)
    messages = [str(m) for m in done.context["messages"]]

    other.refresh_from_db()
    own.refresh_from_db()
    assert other.status == RefundStatus.REJECTED and own.status == RefundStatus.PENDING_APPROVAL
    assert f"Refund {own}: skipped — it is your own request: someone else decides it" in messages
    assert f"Refund {other}: rejected" in messages


def test_change_page_shows_the_timeline_read_only(client, manager):
    refund = RefundFactory()
    from refunds.services import transitions

    transitions.refund_transition(refund_id=refund.pk, to_status=RefundStatus.CANCELED, actor=manager, message="dup")
    client.force_login(manager)

    page = client.get(reverse("admin:refunds_refundrequest_change", args=[refund.pk]))

    assert page.status_code == 200
    assert b"Timeline" in page.content and b"dup" in page.content
    assert b'name="_save"' not in page.content


def test_retry_and_cancel_actions(client, manager, django_capture_on_commit_callbacks, published_tasks):
    stuck = RefundFactory(status=RefundStatus.NEEDS_ATTENTION, submit_attempts=7, error_code="api_error")
    waiting = RefundFactory()
    sent = RefundFactory(status=RefundStatus.PROCESSING)
    force_login_confirmed(client, manager)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(CHANGELIST, {"action": "retry_selected", "_selected_action": [stuck.pk], "confirm": "yes"})
    done = client.post(
        CHANGELIST,
        {"action": "cancel_selected", "_selected_action": [waiting.pk, sent.pk], "confirm": "yes", "comment": "dup"},
        follow=True,
    )

    stuck.refresh_from_db()
    waiting.refresh_from_db()
    sent.refresh_from_db()
    assert (stuck.status, stuck.submit_attempts, stuck.error_code) == (RefundStatus.APPROVED, 0, "")
    assert published_tasks == [("refund_submit_task", (stuck.pk,))]  # the submit task goes out again
    assert (waiting.status, sent.status) == (RefundStatus.CANCELED, RefundStatus.PROCESSING)
    assert f"Refund {sent}: skipped — it is processing: only refunds not yet sent to the provider are canceled" in [
        str(m) for m in done.context["messages"]
    ]


def test_retry_confirmation_warns_when_an_earlier_calls_outcome_is_unknown(client, manager):
    """Retrying such a refund is the person's word that the provider made none: the page says so."""
    unknown = RefundFactory(provider="robokassa", connector_transaction_id="1001",
                            status=RefundStatus.NEEDS_ATTENTION, error_code="unknown_outcome")
    plain = RefundFactory(status=RefundStatus.NEEDS_ATTENTION, error_code="api_error")
    force_login_confirmed(client, manager)

    page = client.post(CHANGELIST, {"action": "retry_selected", "_selected_action": [unknown.pk, plain.pk]})

    html = page.content.decode()
    assert f'data-testid="unknown-outcome-{unknown.pk}"' in html and "Retrying sends it again" in html
    assert f'data-testid="unknown-outcome-{plain.pk}"' not in html
    unknown.refresh_from_db()
    assert unknown.status == RefundStatus.NEEDS_ATTENTION  # nothing happens before the confirmation


def test_the_confirmation_counts_and_totals_only_what_the_action_acts_on(client, manager, agent):
    waiting = RefundFactory(requested_by=agent, amount_minor=6000)
    own = RefundFactory(requested_by=manager, amount_minor=7000)
    done = RefundFactory(requested_by=agent, amount_minor=8000, status=RefundStatus.SUCCEEDED)
    force_login_confirmed(client, manager)

    page = client.post(CHANGELIST, {"action": "approve_selected", "_selected_action": [waiting.pk, own.pk, done.pk]})

    html = page.content.decode()
    assert 'data-testid="confirm-summary">Approve 1 refund:' in html
    assert "60.00 USD" in html.split('data-testid="confirm-total"')[1].split("</p>")[0]
    assert f'data-testid="acting-{own.pk}"' not in html and f'data-testid="acting-{done.pk}"' not in html
    assert f"Refund {own.merchant_refund_id} (70.00 USD): it is your own request: someone else decides it" in html
    assert f"Refund {done.merchant_refund_id} (80.00 USD): it is succeeded, not waiting for approval" in html


def test_a_confirmation_with_nothing_to_act_on_offers_no_button(client, manager):
    finished = RefundFactory(status=RefundStatus.SUCCEEDED)
    force_login_confirmed(client, manager)

    page = client.post(CHANGELIST, {"action": "retry_selected", "_selected_action": [finished.pk]})

    html = page.content.decode()
    assert 'data-testid="nothing-to-do"' in html and 'type="submit" value="Retry"' not in html
    assert "only refunds that need attention are retried" in html
