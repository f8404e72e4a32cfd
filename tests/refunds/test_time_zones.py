"""Times are shown in the reader's time zone (told by the browser), in one notation on the
support pages and in the admin; a zone that is not one is ignored, never an error."""

import pytest
from django.urls import reverse

from tests.factories import RefundFactory
from tests.reports.exporting import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def refund(agent):
    row = RefundFactory(merchant_refund_id="tz-1", requested_by=agent)
    type(row).objects.filter(pk=row.pk).update(created_at=at("2026-12-03 13:05:00"))
    return row


@pytest.mark.parametrize(
    "cookie, shown",
    [
        ("Europe/Berlin", "2026-12-03 14:05 CET"),
        ("America/New_York", "2026-12-03 08:05 EST"),
        ("Asia/Tokyo", "2026-12-03 22:05 JST"),
        (None, "2026-12-03 13:05 UTC"),
        ("Mars/Olympus_Mons", "2026-12-03 13:05 UTC"),
        ("Europe/Berlin\x00", "2026-12-03 13:05 UTC"),
        ("../../etc/passwd", "2026-12-03 13:05 UTC"),
    ],
)
def test_the_support_pages_show_times_in_the_browsers_zone(client, agent, refund, cookie, shown):
    client.force_login(agent)
    if cookie is not None:
        client.cookies["tz"] = cookie

    detail = client.get(reverse("refund-detail", args=["tz-1"]))
    listing = client.get(reverse("refund-list"))

    assert detail.status_code == listing.status_code == 200
    assert f"<dt>Requested</dt><dd>{shown}</dd>" in detail.content.decode()
    assert shown in listing.content.decode()


@pytest.mark.parametrize("language", ["en-US", "de-DE", "ru-RU"])
def test_the_admin_writes_times_the_same_way_in_every_language(client, manager, refund, language):
    client.force_login(manager)
    client.cookies["tz"] = "Europe/Berlin"

    page = client.get(reverse("admin:refunds_refundrequest_change", args=[refund.pk]), HTTP_ACCEPT_LANGUAGE=language)

    assert page.status_code == 200
    assert "2026-12-03 14:05" in page.content.decode()
