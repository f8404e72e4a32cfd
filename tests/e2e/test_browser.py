"""A support agent and a finance manager at work, in headless Chromium against the running
app (live server), a real Celery worker and the Stripe sandbox. Screenshots of the key pages
land in test-artifacts/screenshots/ (not in git)."""

import re

import pytest
from playwright.sync_api import Error as PlaywrightError

from refunds.models import RefundRequest, RefundStatus
from tests import factories
from tests.fixtures.browser import SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def file_refund(page, pi, amount, reason, shot=None):
    page.goto("/refunds/new")
    page.get_by_label("Transaction id").fill(pi)
    page.get_by_role("button", name="Look up").click()
    page.get_by_test_id("payment-refundable").wait_for()
    page.get_by_label("Part of it").check()
    page.get_by_label("Amount (USD)").fill(amount)
    page.get_by_label("Reason code").select_option("product_return")
    page.get_by_label("Note").fill(reason)
    if shot:
        page.screenshot(path=SHOTS / shot, full_page=True)
    page.get_by_role("button", name="Review refund").click()
    page.get_by_role("button", name="Confirm refund").click()
    page.wait_for_url(re.compile(r"/refunds/web-"))
    return page.url.rsplit("/", 1)[1]


def reload(page):
    """Reload a status page, which also refreshes itself (meta refresh): when its own refresh is
    under way, Chromium refuses a second navigation, and the one in flight does the same job."""
    try:
        page.reload()
    except PlaywrightError as error:
        if not any(sign in str(error) for sign in ("Not attached to an active page", "interrupted", "ERR_ABORTED")):
            raise


def decide_in_admin(page, refund, action, comment, shot=None):
    page.goto("/admin/approvals/pendingrefund/")
    page.locator(f'input.action-select[value="{refund.pk}"]').check()
    page.locator('select[name="action"]').select_option(action)
    page.get_by_role("button", name="Go").click()
    page.get_by_label(re.compile("Comment|Reason")).fill(comment)
    if shot:
        page.screenshot(path=SHOTS / shot, full_page=True)
    verb = {"approve_selected": "Approve", "reject_selected": "Reject"}[action]
    page.get_by_role("button", name=verb, exact=True).click()
    # The admin capitalises the first letter of a message.
    return page.locator("ul.messagelist").text_content().strip().lower()


def test_agent_files_manager_approves_refund_succeeds(live_worker, login, stripe_sandbox):
    agent = factories.agent(username="agent")
    manager = factories.manager(username="manager")
    pi = stripe_sandbox.create_payment(20_000, metadata={"product": "Standing desk"})

    agent_page = login(agent, "/refunds/new")
    merchant_refund_id = file_refund(agent_page, pi, "75.00", "Arrived scratched; partial refund agreed", "1-new-refund.png")
    assert agent_page.get_by_test_id("status").inner_text() == "Pending approval"
    agent_page.screenshot(path=SHOTS / "2-status-pending.png", full_page=True)

    refund = RefundRequest.objects.get(merchant_refund_id=merchant_refund_id)
    manager_page = login(manager, "/admin/approvals/pendingrefund/")
    manager_page.screenshot(path=SHOTS / "3-approval-queue.png", full_page=True)
    outcome = decide_in_admin(manager_page, refund, "approve_selected", "Checked the photos", "4-confirm-approve.png")
    assert f"refund {merchant_refund_id}: approved" in outcome

    reload(agent_page)
    agent_page.get_by_test_id("status").filter(has_text="Succeeded").wait_for(timeout=45_000)
    agent_page.screenshot(path=SHOTS / "5-status-succeeded.png", full_page=True)
    [at_stripe] = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data
    assert at_stripe.amount == 7_500 and at_stripe.status == "succeeded"


def test_manager_rejects_and_the_agent_sees_why(live_worker, login, stripe_sandbox):
    agent = factories.agent(username="agent")
    manager = factories.manager(username="manager")
    pi = stripe_sandbox.create_payment(20_000)
    agent_page = login(agent, "/refunds/new")
    merchant_refund_id = file_refund(agent_page, pi, "90.00", "Customer asks for a refund")
    refund = RefundRequest.objects.get(merchant_refund_id=merchant_refund_id)

    outcome = decide_in_admin(login(manager, "/admin/"), refund, "reject_selected", "Outside the 30-day window")

    assert f"refund {merchant_refund_id}: rejected" in outcome
    reload(agent_page)
    assert agent_page.get_by_test_id("status").inner_text() == "Rejected"
    assert "Outside the 30-day window" in agent_page.locator("table").inner_text()
    assert stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data == []


def test_a_manager_cannot_approve_their_own_request(live_worker, login, stripe_sandbox):
    manager = factories.manager(username="manager")
    pi = stripe_sandbox.create_payment(20_000)
    page = login(manager, "/refunds/new")
    merchant_refund_id = file_refund(page, pi, "60.00", "Goodwill")
    refund = RefundRequest.objects.get(merchant_refund_id=merchant_refund_id)

    page.goto("/admin/approvals/pendingrefund/")
    page.locator(f'input.action-select[value="{refund.pk}"]').check()
    page.locator('select[name="action"]').select_option("approve_selected")
    page.get_by_role("button", name="Go").click()

    # The confirmation says why and offers nothing to confirm.
    assert "it is your own request: someone else decides it" in page.get_by_test_id(f"skipped-{refund.pk}").inner_text()
    assert page.get_by_test_id("nothing-to-do").is_visible()
    assert page.get_by_role("button", name="Approve", exact=True).count() == 0
    page.screenshot(path=SHOTS / "6-self-approval-refused.png", full_page=True)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL and not refund.approvals.exists()
