"""Linking a Slack user to an account: only through the signed sign-in link Slack gives the
person, opened while logged in and confirmed with the authenticator; and confirming the second
factor for Slack again once it went stale."""

import datetime
import re
from urllib.parse import unquote

import pytest
from django.utils import timezone

from refunds.models import SlackIdentity
from refunds.services.slack_approvals import slack_identity_is_fresh, slack_link_token
from tests.second_factor import force_login_confirmed
from tests.slack.conftest import MANAGER_SLACK, link

pytestmark = pytest.mark.django_db


def link_path(slack_user_id=MANAGER_SLACK):
    return f"/slack/link/?t={slack_link_token(slack_user_id=slack_user_id, team_id='T0EMULATOR')}"


def test_the_link_page_links_after_login_and_second_factor(client, manager, slack_app):
    path = link_path()
    assert client.get(path).status_code == 302  # to the login page
    client.force_login(manager)
    asked = client.get(path)
    assert asked.status_code == 302 and asked.url.startswith("/accounts/second-factor/")
    assert unquote(asked.url.split("next=")[1]) == path  # back here after the code

    force_login_confirmed(client, manager)
    page = client.get(path)
    assert page.status_code == 200 and MANAGER_SLACK in page.content.decode()
    assert "Fran Finance" in page.content.decode()  # users.info: whom the link is for
    assert not SlackIdentity.objects.exists()  # a GET links nobody

    done = client.post("/slack/link/", {"t": path.split("t=")[1]})
    assert done.status_code == 200 and "Linked" in done.content.decode()
    identity = SlackIdentity.objects.get()
    assert (identity.user, identity.slack_user_id) == (manager, MANAGER_SLACK)
    assert slack_identity_is_fresh(identity)


def test_a_slack_user_linked_to_someone_else_stays_theirs(client, manager, manager2):
    link(manager, MANAGER_SLACK)
    force_login_confirmed(client, manager2)
    answer = client.post("/slack/link/", {"t": link_path().split("t=")[1]})
    assert answer.status_code == 409 and "already linked to another account" in answer.content.decode()
    assert SlackIdentity.objects.get().user == manager


@pytest.mark.parametrize("token", ["", "nonsense", "eyJ1IjoiVTEifQ:1abc:def"])
def test_a_bad_link_is_a_page_saying_so(client, manager, token):
    force_login_confirmed(client, manager)
    answer = client.get(f"/slack/link/?t={token}")
    assert answer.status_code == 400 and "This link is not valid." in answer.content.decode()


def test_an_expired_link_says_to_click_again(client, manager, monkeypatch):
    path = link_path()
    force_login_confirmed(client, manager)
    later = datetime.datetime.now().timestamp() + 2 * 24 * 3600
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    answer = client.get(path)
    assert answer.status_code == 400 and "expired" in answer.content.decode()


def test_confirming_for_slack_refreshes_the_second_factor(client, manager):
    identity = link(manager, MANAGER_SLACK, fresh=False)
    assert not slack_identity_is_fresh(identity)
    force_login_confirmed(client, manager)
    page = client.get("/slack/confirm/")
    assert re.search(r"expired at \d\d:\d\d", page.content.decode())
    client.post("/slack/confirm/")
    identity.refresh_from_db()
    assert slack_identity_is_fresh(identity) and timezone.now() - identity.second_factor_at < datetime.timedelta(seconds=30)


def test_the_confirm_page_asks_for_the_code_first(client, manager):
    link(manager, MANAGER_SLACK, fresh=False)
    client.force_login(manager)
    asked = client.post("/slack/confirm/")
    assert asked.status_code == 302 and asked.url.startswith("/accounts/second-factor/")
    assert not slack_identity_is_fresh(SlackIdentity.objects.get())
