"""Approve and reject through the API: who may, when, and what it leaves behind."""

import pytest

from approvals.models import Approval
from refunds.models import RefundStatus
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(agent):
    return RefundFactory(requested_by=agent, amount_minor=9000, merchant_refund_id="big-1")


def test_manager_approves_and_the_refund_goes_to_the_worker(
    api, manager, pending, django_capture_on_commit_callbacks, published_tasks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(manager).post("/api/refunds/big-1/approve/", {"comment": "ok, verified"}, format="json")

    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["status"] == "approved"
    assert data["approvals"] == [
        {
            "decision": "approved",
            "approver": "manager",
            "comment": "ok, verified",
            "tier": 1,
            "created_at": data["approvals"][0]["created_at"],
        }
    ]
    pending.refresh_from_db()
    assert pending.approved_at is not None and pending.next_action_at is not None
    assert published_tasks == [("refund_submit_task", (pending.pk,))]


def test_requester_cannot_approve_their_own_refund(api, manager):
    own = RefundFactory(requested_by=manager, merchant_refund_id="own-1")

    response = api(manager).post("/api/refunds/own-1/approve/", {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "self_approval_forbidden"
    own.refresh_from_db()
    assert own.status == RefundStatus.PENDING_APPROVAL and not Approval.objects.exists()


def test_agents_and_accountants_cannot_decide(api, agent, accountant, pending):
    assert api(agent).post("/api/refunds/big-1/approve/", {}, format="json").status_code == 403
    assert api(accountant).post("/api/refunds/big-1/reject/", {"comment": "no"}, format="json").status_code == 403
    pending.refresh_from_db()
    assert pending.status == RefundStatus.PENDING_APPROVAL


def test_second_decision_is_409(api, manager, manager2, pending):
    api(manager).post("/api/refunds/big-1/approve/", {}, format="json")

    again = api(manager2).post("/api/refunds/big-1/approve/", {}, format="json")
    reject = api(manager2).post("/api/refunds/big-1/reject/", {"comment": "late"}, format="json")

    assert again.status_code == 409 and again.json()["error"]["code"] == "not_awaiting_approval"
    assert reject.status_code == 409
    assert Approval.objects.count() == 1


def test_rejection_needs_a_reason(api, manager, pending):
    response = api(manager).post("/api/refunds/big-1/reject/", {"comment": "  "}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "comment_required", "message": "A rejection needs a reason.", "field": "comment"}
    pending.refresh_from_db()
    assert pending.status == RefundStatus.PENDING_APPROVAL


def test_rejection_is_final_and_logged(api, manager, pending):
    response = api(manager).post("/api/refunds/big-1/reject/", {"comment": "Outside the return window"}, format="json")

    assert response.json()["status"] == "rejected"
    assert response.json()["resolved_at"] is not None
    log = pending.logs.order_by("-id").first()
    assert (log.from_status, log.to_status, log.actor) == ("pending_approval", "rejected", manager)
    assert "Outside the return window" in log.message


def test_unknown_refund_is_404(api, manager):
    response = api(manager).post("/api/refunds/nope/approve/", {}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_refusals_tell_the_person_why(api, agent, manager, manager2):
    """The 403/409 bodies carry the reason a person reads, not only a code."""
    RefundFactory(requested_by=manager, merchant_refund_id="own-2")
    big = RefundFactory(requested_by=agent, amount_minor=250_000, merchant_refund_id="big-2")
    done = RefundFactory(requested_by=agent, status=RefundStatus.CANCELED, merchant_refund_id="done-2")

    not_a_manager = api(agent).post("/api/refunds/big-2/approve/", {}, format="json").json()["error"]
    own = api(manager).post("/api/refunds/own-2/approve/", {}, format="json").json()["error"]
    api(manager).post("/api/refunds/big-2/approve/", {}, format="json")  # tier 1: still waits
    twice = api(manager).post("/api/refunds/big-2/approve/", {}, format="json").json()["error"]
    closed = api(manager2).post("/api/refunds/done-2/approve/", {}, format="json").json()["error"]

    assert not_a_manager["message"] == "Only finance managers may approve or reject refunds."
    assert own["message"] == "Nobody approves or rejects a refund they requested."
    assert twice == {"code": "already_approved", "field": None,
                     "message": "You have already approved this refund; it needs someone else."}
    assert closed["code"] == "not_awaiting_approval"
    assert closed["message"] == f"Refund {done} is canceled, not awaiting approval."
    assert big.approvals.count() == 1
