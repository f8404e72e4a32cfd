"""The API shows every refund through one RefundSerializer per process (serializers.refund_shown):
what it answers must be what a new RefundSerializer answers, refund after refund, with nothing of
one refund left in the next."""

import datetime

import pytest
from django.utils import timezone

from approvals.models import Approval
from refunds.api.serializers import RefundSerializer, refund_shown
from refunds.models import RefundRequest, RefundStatus
from refunds.selectors import refund_with_approvals
from tests.factories import RefundFactory, manager

pytestmark = pytest.mark.django_db


def _loaded(refund) -> RefundRequest:
    return refund_with_approvals(RefundRequest.objects.select_related("requested_by")).get(pk=refund.pk)


def test_each_refund_is_shown_as_a_new_serializer_shows_it():
    approver = manager()
    rich = RefundFactory(
        status=RefundStatus.FAILED, connector_refund_id="re_123", reason="broken", metadata={"ticket": "T-9"},
        product="Plan B", items=[{"name": "Mug", "quantity": 2, "cost": {"minor_amount": 500, "currency": "USD"},
                                  "tax": "none"}],
        error_code="card_declined", error_message="Declined", resolved_at=timezone.now(),
        disputed_at=timezone.now() - datetime.timedelta(hours=1),
    )
    Approval.objects.create(refund=rich, approver=approver, decision=Approval.Decision.APPROVED, comment="ok")
    plain = RefundFactory(currency="EUR", amount_minor=77, requested_by=None)
    Approval.objects.create(refund=plain, decision=Approval.Decision.AUTO_APPROVED, comment="threshold")

    shown = [refund_shown(_loaded(r)) for r in (rich, plain, rich)]

    assert shown == [RefundSerializer(_loaded(r)).data for r in (rich, plain, rich)]
    first, second, again = shown
    assert first == again
    assert first["error"] == {"code": "card_declined", "message": "Declined"}
    assert first["approvals"][0]["approver"] == approver.get_username()
    assert first["items"][0]["name"] == "Mug" and first["disputed_at"] is not None
    assert second["amount"] == {"minor_amount": 77, "currency": "EUR"}
    assert second["requested_by"] is None and second["error"] is None and second["connector_refund_id"] is None
    assert [a["decision"] for a in second["approvals"]] == ["auto_approved"]
