"""Each role logs in through the login page, in headless Chromium at a 1366 px laptop width, and
lands on its own page; the finance manager's approval queue fits the screen."""

import re

import pytest

from refunds.models import RefundStatus
from tests import factories
from tests.factories import PaymentFactory, RefundFactory
from tests.fixtures.browser import PASSWORD, SHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(browser, live_server, user):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/")  # not logged in: the login page, as anyone would start
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return context, page


@pytest.mark.parametrize(
    "role, path, heading",
    [
        ("agent", "/refunds/", re.compile("my requests", re.I)),
        ("manager", "/admin/approvals/pendingrefund/", re.compile("approval", re.I)),
        ("accountant", "/reports/", re.compile("dashboard|report", re.I)),
    ],
)
def test_each_role_lands_on_its_own_page(browser, live_server, role, path, heading):
    user = getattr(factories, role)(username=role)
    context, page = log_in(browser, live_server, user)
    try:
        assert page.url == live_server.url + path
        assert heading.search(page.locator("h1").first.inner_text())
        page.screenshot(path=SHOTS / f"home-{role}.png", full_page=True)
    finally:
        context.close()


def test_the_approval_queue_fits_a_laptop_screen_and_counts_what_waits(browser, live_server):
    manager = factories.manager(username="manager")
    agent = factories.agent(username="agent")
    for n in range(4):
        payment = PaymentFactory(customer=f"cus_{n}", product="Ergonomic standing desk with a long name")
        RefundFactory(
            requested_by=agent, payment=payment, status=RefundStatus.PENDING_APPROVAL, amount_minor=123_456_78,
            product="Ergonomic standing desk with a long name", reason="Arrived scratched on two legs, customer sent photos",
        )
    RefundFactory(requested_by=manager, status=RefundStatus.PENDING_APPROVAL, amount_minor=9000)
    context, page = log_in(browser, live_server, manager)
    try:
        assert page.get_by_test_id("approvals-waiting").text_content() == "Approval queue (4)"
        page_overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        table_overflow = page.evaluate(
            "document.querySelector('#result_list').scrollWidth - document.querySelector('.results').clientWidth"
        )
        page.screenshot(path=SHOTS / "approval-queue-1366.png", full_page=True)
        assert (page_overflow, table_overflow) <= (0, 0), "the queue scrolls sideways at 1366 px"
        amounts = page.locator("td.field-amount .money")
        assert amounts.count() == 5
        for index in range(5):  # a money value is one line: never "123,456.78" over "USD"
            box = amounts.nth(index).bounding_box()
            assert box["height"] < 24, amounts.nth(index).inner_text()
        own = page.locator("#result_list tr", has=page.get_by_text("Your request"))
        assert own.count() == 1 and "90.00 USD" in own.inner_text()
        assert page.get_by_test_id("queue-count").inner_text() == "5 refunds waiting for approval"
    finally:
        context.close()
