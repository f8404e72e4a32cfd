"""The Slack emulator answers the Web API as Slack does, for slack_sdk over HTTP: the bot token,
message updates, one view per trigger, people; and its faults for tests of Slack being down."""

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from devtools.slack_emulator.page import mrkdwn
from refunds.checks import slack_app_configured


@pytest.fixture
def web(slack_emulator):
    slack_emulator.reset()
    slack_emulator.configure(faults={})
    return WebClient(token=slack_emulator.token, base_url=slack_emulator.api_url, timeout=5)


def test_a_wrong_token_is_invalid_auth(slack_emulator, web):
    other = WebClient(token="xoxb-wrong", base_url=slack_emulator.api_url, timeout=5)
    with pytest.raises(SlackApiError) as raised:
        other.chat_postMessage(channel="C1", text="hi")
    assert raised.value.response["error"] == "invalid_auth" and slack_emulator.messages() == []


def test_messages_are_posted_updated_and_unknown_ones_are_not_found(slack_emulator, web):
    posted = web.chat_postMessage(channel="C1", text="first", blocks=[{"type": "divider"}])
    web.chat_update(channel="C1", ts=posted["ts"], text="second", blocks=[])
    [message] = slack_emulator.messages()
    assert (message["text"], message["updates"]) == ("second", 1)
    with pytest.raises(SlackApiError) as raised:
        web.chat_update(channel="C1", ts="1.2", text="x")
    assert raised.value.response["error"] == "message_not_found"


def test_an_unknown_trigger_opens_no_view_and_people_are_known(slack_emulator, web):
    with pytest.raises(SlackApiError) as raised:
        web.views_open(trigger_id="TRIG-unknown", view={"type": "modal", "title": {"type": "plain_text", "text": "x"}})
    assert raised.value.response["error"] == "invalid_trigger_id" and slack_emulator.views() == []
    assert web.users_info(user="U0MANAGER1")["user"]["real_name"] == "Fran Finance"
    with pytest.raises(SlackApiError) as raised:
        web.users_info(user="U0NOBODY")
    assert raised.value.response["error"] == "user_not_found"


def test_faults_make_slack_unavailable_for_a_number_of_calls(slack_emulator, web):
    slack_emulator.configure(faults={"status": 503, "count": 2})
    for _ in range(2):
        with pytest.raises(SlackApiError):
            web.chat_postMessage(channel="C1", text="down")
    assert web.chat_postMessage(channel="C1", text="up")["ok"]


def test_the_page_shows_slack_markup_as_text_not_html():
    html = mrkdwn("*300.00 USD* &lt;script&gt; <http://x/a?b=1&amp;c=2|rf-1> <@U0MANAGER1> `pi_1`")
    assert "<b>300.00 USD</b>" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert '<a href="http://x/a?b=1&amp;c=2">rf-1</a>' in html and "@U0MANAGER1" in html and "<code>pi_1</code>" in html


def test_a_bot_token_without_the_signing_secret_or_channel_stops_start_up(settings):
    settings.SLACK_BOT_TOKEN, settings.SLACK_SIGNING_SECRET, settings.SLACK_APPROVALS_CHANNEL = "xoxb-1", "", "C1"
    [error] = slack_app_configured()
    assert error.id == "refunds.E101" and "SLACK_SIGNING_SECRET is not" in error.msg
    settings.SLACK_SIGNING_SECRET = "s"
    assert slack_app_configured() == []
