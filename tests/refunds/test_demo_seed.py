"""The demo says what it does: who can approve its large refund, and which demo payments'
refunds fail or stay pending (named so on the payment a support agent looks up)."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from approvals.models import Approval
from approvals.services import refund_approve
from refunds.models import RefundRequest, RefundStatus

pytestmark = pytest.mark.django_db


def test_the_demo_names_its_special_payments_and_who_approves_the_large_refund(stripe_sandbox):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)

    printed = out.getvalue()
    assert "Keyboard (demo: refunds always fail)" in printed
    assert "'Annual licence' refund needs admin" in printed
    failing = re.search(r"demo payment (pi_\w+): 75\.00 USD Keyboard \(demo: refunds always fail\)", printed).group(1)
    at_stripe = stripe_sandbox.client().v1.payment_intents.retrieve(failing)
    assert at_stripe.metadata["sandbox_refund_behavior"] == "fail"

    # What the README and the web log promise: a manager's approval is a tier, admin finishes it.
    large = RefundRequest.objects.get(product="Annual licence", merchant_refund_id__startswith="demo-")
    users = get_user_model().objects
    refund_approve(refund_id=large.pk, approver=users.get(username="manager"), comment="ok")
    large.refresh_from_db()
    assert large.status == RefundStatus.PENDING_APPROVAL
    refund_approve(refund_id=large.pk, approver=users.get(username="admin"), comment="ok")
    large.refresh_from_db()
    assert large.status == RefundStatus.APPROVED
    assert large.approvals.filter(decision=Approval.Decision.APPROVED).count() == 2
