"""A finance manager approves from the Slack emulator's page in Chromium: the first click is
answered with a link to confirm in the app (their second factor for Slack is stale); they log in,
type their authenticator's code, confirm, click Approve again, and the refund is executed at the
Stripe sandbox by the worker while the Slack message loses its buttons and ends "Refunded"."""

import re

import pytest

from tests.fixtures.browser import PASSWORD, SHOTS
from tests.fixtures.worker import wait_until
from tests.integration.waiting import wait_for_status
from tests.second_factor import current_code
from tests.slack.conftest import MANAGER_SLACK, link

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_manager_approves_in_slack_and_the_refund_is_executed(
    browser, live_server, live_worker, slack_app, stripe_sandbox, api, agent, manager, settings
):
    settings.SITE_URL = live_server.url  # the links Slack shows lead to this test's server
    slack_app.configure(interactions_url=f"{live_server.url}/slack/interactions")
    link(manager, MANAGER_SLACK, fresh=False)
    pi = stripe_sandbox.create_payment(100_000)
    filed = api(agent).post("/api/refunds/", {
        "merchant_refund_id": "slack-e2e", "connector_transaction_id": pi, "reason": "Parcel lost",
        "amount": {"minor_amount": 30_000, "currency": "USD"}}, format="json")
    assert filed.json()["status"] == "pending_approval"
    wait_until(lambda: any("slack-e2e" in m["text"] for m in slack_app.messages()), timeout=60,
               message="the worker to post the approval message")

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{slack_app.base_url}/?user={MANAGER_SLACK}")
        message = page.locator("article.msg:not(.ephemeral)").filter(has_text="slack-e2e")
        message.get_by_text("Refund awaiting approval: 300.00 USD").wait_for()
        assert "Parcel lost" in message.inner_text() and "Needs: an approver whose limit covers 300.00 USD" in message.inner_text()
        page.screenshot(path=SHOTS / "slack-1-approval-message.png", full_page=True)

        message.get_by_role("button", name="Approve", exact=True).click()
        told = page.locator("article.ephemeral").last
        told.get_by_text("Confirm in Refund Office").wait_for()
        told.get_by_role("link", name="Confirm in Refund Office").click()

        page.wait_for_url(re.compile(r"/accounts/login/"))
        page.get_by_label("Username").fill(manager.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_label("Code from your authenticator").fill(current_code(manager))
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_url(re.compile(r"/slack/confirm/$"))
        page.get_by_role("button", name="Confirm for Slack").click()
        page.get_by_role("status").filter(has_text="Confirmed").wait_for()

        page.goto(f"{slack_app.base_url}/?user={MANAGER_SLACK}")
        message = page.locator("article.msg:not(.ephemeral)").filter(has_text="slack-e2e")
        message.get_by_role("button", name="Approve", exact=True).click()
        page.locator("article.ephemeral").filter(has_text="You approved slack-e2e.").wait_for()

        refund = wait_for_status("slack-e2e", "succeeded")
        [at_stripe] = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi})
        assert (at_stripe.id, at_stripe.amount) == (refund.connector_refund_id, 30_000)
        wait_until(lambda: any("slack-e2e" in m["text"] and "succeeded" in m["text"] for m in slack_app.messages()),
                   timeout=60, message="the message to show the final status")
        page.reload()
        message = page.locator("article.msg:not(.ephemeral)").filter(has_text="slack-e2e")
        assert "Refunded: the provider confirmed it" in message.inner_text()
        assert "Approved by manager" in message.inner_text()
        assert message.get_by_role("button").count() == 0
        page.screenshot(path=SHOTS / "slack-2-refunded.png", full_page=True)
    finally:
        context.close()
