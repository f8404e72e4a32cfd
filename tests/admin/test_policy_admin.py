"""The approval policy in the admin: thresholds and approver limits read as money in the
reader's language, not as raw minor units."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from approvals.models import ApproverLimit, AutoApproveThreshold

pytestmark = pytest.mark.django_db


def test_thresholds_and_limits_are_money_in_the_reader_s_language(admin_client):
    AutoApproveThreshold.objects.create(currency="RUB", max_minor_amount=500_000)
    ApproverLimit.objects.update_or_create(group=Group.objects.get(name="Finance managers"), currency="",
                                           defaults={"max_minor_amount": 100_000})
    ApproverLimit.objects.create(group=Group.objects.get(name="Finance managers"), currency="JPY",
                                 max_minor_amount=250_000)

    thresholds = admin_client.get(reverse("admin:approvals_autoapprovethreshold_changelist")).content.decode()
    limits = admin_client.get(reverse("admin:approvals_approverlimit_changelist"),
                              HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert "5,000.00 RUB" in thresholds and "500000" not in thresholds
    assert "1.000,00 in any 2-decimal currency (100.000 JPY, 100,000 KWD)" in limits
    assert "250.000 JPY" in limits and ">100000<" not in limits
