"""A support agent in New York reads times in New York time: the browser tells its zone on the
login page, in headless Chromium with that zone."""

import pytest

from tests import factories
from tests.factories import RefundFactory
from tests.fixtures.browser import PASSWORD, SHOTS
from tests.reports.exporting import at

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_agent_in_new_york_reads_new_york_times(browser, live_server):
    agent = factories.agent(username="agent")
    refund = RefundFactory(merchant_refund_id="ny-1", requested_by=agent)
    type(refund).objects.filter(pk=refund.pk).update(created_at=at("2026-12-03 13:05:00"))
    context = browser.new_context(base_url=live_server.url, timezone_id="America/New_York")
    try:
        page = context.new_page()
        page.goto("/accounts/login/?next=/refunds/ny-1")
        page.get_by_label("Username").fill("agent")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/refunds/ny-1")

        assert "2026-12-03 08:05 EST" in page.locator("dl.facts").inner_text()
        page.screenshot(path=SHOTS / "refund-detail-new-york.png", full_page=True)
    finally:
        context.close()
