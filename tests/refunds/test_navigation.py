"""Each role lands on its own page after logging in, the top bar tells a finance manager how many
refunds wait, and errors are pages in the app's look that say what to do next."""

import pytest
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from django.views import defaults

from refunds.models import RefundStatus
from tests import factories
from tests.factories import RefundFactory
from tests.fixtures.browser import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "make_user, lands_on",
    [
        (factories.agent, "/refunds/"),
        (factories.manager, "/admin/approvals/pendingrefund/"),
        (factories.accountant, "/reports/"),
        (lambda **kw: factories.UserFactory(is_staff=True, is_superuser=True, **kw), "/admin/approvals/pendingrefund/"),
    ],
    ids=["agent", "manager", "accountant", "superuser"],
)
def test_each_role_lands_on_its_own_page_after_logging_in(client, make_user, lands_on):
    user = make_user(username="someone")

    response = client.post(reverse("login"), {"username": "someone", "password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == lands_on
    assert response.status_code == 200
    assert client.get("/").url == lands_on  # the brand link goes there too
    assert user.is_authenticated


def test_a_login_link_with_a_next_page_still_goes_there(client):
    factories.manager(username="m")
    response = client.post(reverse("login") + "?next=/refunds/new", {"username": "m", "password": PASSWORD})
    assert response.url == "/refunds/new"


def test_the_top_bar_counts_the_refunds_a_manager_could_decide(client, manager, agent):
    RefundFactory.create_batch(3, requested_by=agent, status=RefundStatus.PENDING_APPROVAL)
    RefundFactory(requested_by=manager, status=RefundStatus.PENDING_APPROVAL)  # their own: not theirs to decide
    RefundFactory(requested_by=agent, status=RefundStatus.APPROVED)
    client.force_login(manager)

    support_page = client.get(reverse("refund-list")).content.decode()
    admin_page = client.get(reverse("admin:index")).content.decode()

    assert 'data-testid="approvals-waiting">Approval queue <span class="count">3</span>' in support_page
    assert 'data-testid="approvals-waiting">Approval queue (3)</a>' in admin_page
    client.force_login(agent)
    assert "approvals-waiting" not in client.get(reverse("refund-list")).content.decode()


def test_a_missing_refund_is_a_404_page_in_the_apps_look(client, agent):
    client.force_login(agent)

    page = client.get("/refunds/no-such-refund")

    assert page.status_code == 404
    html = page.content.decode()
    assert 'data-testid="error-page"' in html and "We could not find that page" in html
    assert "Log out agent" in html  # the app's own top bar, not a bare server page


def test_a_forbidden_page_is_a_403_page_that_says_what_to_do(client, agent):
    client.force_login(agent)

    page = client.get("/reports/")

    assert page.status_code == 403
    assert "You may not do this" in page.content.decode() and "ask an administrator" in page.content.decode()


def test_the_500_page_needs_no_request_nor_database_and_keeps_the_look():
    response = defaults.server_error(RequestFactory().get("/"))

    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html and "refunds/app.css" in html


def test_the_projects_system_checks_pass():
    """What a worker and `manage.py` run first: an admin misconfiguration stops every process."""
    call_command("check", fail_level="WARNING")
