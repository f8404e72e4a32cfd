"""A finance manager meets the second factor in Chromium: logged in with a password, they read the
queue; choosing Approve sends them to "Confirm with your authenticator", where a wrong code is
refused and the code their app shows brings them back to the queue to approve."""

import re
from datetime import timedelta

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from refunds.models import RefundStatus
from tests import factories
from tests.factories import RefundFactory
from tests.fixtures.browser import SHOTS
from tests.second_factor import current_code

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
QUEUE = "/admin/approvals/pendingrefund/"


def _choose(page, refund, action):
    page.locator(f'input.action-select[value="{refund.pk}"]').check()
    page.locator('select[name="action"]').select_option(action)
    page.get_by_role("button", name="Go").click()


def test_the_manager_confirms_with_the_authenticator_before_approving(login):
    manager = factories.manager(username="manager")
    refund = RefundFactory(requested_by=factories.agent(username="agent"), amount_minor=9000)
    page = login(manager, QUEUE, second_factor=False)
    assert refund.merchant_refund_id in page.locator("#result_list").inner_text()  # reading needs no code

    _choose(page, refund, "approve_selected")
    page.wait_for_url(re.compile(r"/accounts/second-factor/\?next="))
    wrong = f"{(int(current_code(manager)) + 1) % 1_000_000:06d}"
    page.get_by_label("Code from your authenticator").fill(wrong)
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("alert").filter(has_text="not right").wait_for()
    page.screenshot(path=SHOTS / "7-second-factor-wrong-code.png", full_page=True)
    # The person waits out the pause a wrong code costs (1 s): moved back instead of sleeping.
    device = TOTPDevice.objects.get(user=manager)
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=device.throttling_failure_timestamp - timedelta(seconds=5)
    )
    page.get_by_label("Code from your authenticator").fill(current_code(manager))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(re.escape(QUEUE) + "$"))

    _choose(page, refund, "approve_selected")
    page.get_by_label(re.compile("Comment|Reason")).fill("Checked")
    page.get_by_role("button", name="Approve", exact=True).click()
    assert f"{refund.merchant_refund_id}: approved" in page.locator("ul.messagelist").text_content().lower()
    refund.refresh_from_db()
    assert refund.status == RefundStatus.APPROVED
