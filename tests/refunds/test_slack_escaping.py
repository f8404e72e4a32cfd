"""Text people type reaches Slack escaped by Slack's rules (& < >), so it can neither ping a
channel nor become a disguised link; our own links and formatting still work."""

import datetime

import pytest

from refunds.models import RefundLog, RefundStatus, Sale
from refunds.reports import morning as morning_summary
from refunds.services.notifications import refund_changes_notify, slack_escape
from tests.factories import PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db

HOSTILE = "<!channel> see <https://evil.example|Approve here> & <@U0123>"
ESCAPED = "&lt;!channel&gt; see &lt;https://evil.example|Approve here&gt; &amp; &lt;@U0123&gt;"


def posted_text(message: dict) -> str:
    """Every piece of text in a Block Kit message, as Slack would read it."""
    texts = [message["text"]]
    for block in message["blocks"]:
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if part:
                texts.append(part["text"])
    return "\n".join(texts)


def test_slack_escape_follows_slacks_three_rules():
    assert slack_escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert slack_escape("&lt;") == "&amp;lt;"  # text that looks escaped is text too


def test_a_refund_message_carries_hostile_text_inert(slack, settings, agent, manager):
    settings.SITE_URL = "https://refunds.example.com"
    manager.first_name, manager.last_name = "<!here>", "Boss"
    manager.save(update_fields=["first_name", "last_name"])
    refund = RefundFactory(
        requested_by=agent,
        reason=HOSTILE,
        product="<!everyone> mug",
        status=RefundStatus.FAILED,
        error_code="<x>",
        error_message="declined <https://evil.example|retry here>",
    )

    failed = RefundLog.objects.create(
        refund=refund, event=RefundLog.Event.STATUS_CHANGED, from_status="processing", to_status="failed", actor=manager
    )

    refund_changes_notify(refund_id=refund.pk, log_ids=[failed.pk])

    [message] = slack.messages
    text = posted_text(message)
    assert f"Reason: {ESCAPED}" in text
    assert "&lt;!everyone&gt; mug" in text and "By &lt;!here&gt; Boss" in text
    assert "declined &lt;https://evil.example|retry here&gt;" in text
    for raw in ("<!channel>", "<!here>", "<!everyone>", "<@U0123>", "<https://evil", "<x>"):
        assert raw not in text
    # Our own link is still a link.
    assert f"<https://refunds.example.com/admin/refunds/refundrequest/{refund.pk}/change/|{refund.merchant_refund_id}>" in text


def test_the_morning_summary_carries_hostile_product_names_inert(slack, settings):
    settings.REPORTS_SUMMARY_SEND_AT = "08:00"
    settings.SITE_URL = "https://refunds.example.com"
    created = datetime.datetime(2026, 3, 10, 15, 0, tzinfo=datetime.UTC)
    refund = RefundFactory(
        payment=PaymentFactory(provider="stripe"), status=RefundStatus.FAILED, product="<!channel> & co",
        error_code="<!here>",
    )
    type(refund).objects.filter(pk=refund.pk).update(created_at=created, resolved_at=created)
    Sale.objects.create(
        source=Sale.Source.IMPORT, external_id="s-1", product="<!channel> & co", amount_minor=10_000, currency="USD",
        sold_at=created,
    )

    morning_summary.summary_send_due(now=datetime.datetime(2026, 3, 11, 12, 0, tzinfo=datetime.UTC))

    [message] = slack.messages
    text = posted_text(message)
    assert "&lt;!channel&gt; &amp; co" in text and "&lt;!here&gt;" in text
    assert "<!channel>" not in text and "<!here>" not in text
    assert "<https://refunds.example.com/reports/summary/" in text  # the summary's own link stays a link

