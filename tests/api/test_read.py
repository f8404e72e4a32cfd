"""GET /api/refunds/: who sees what, filters, pagination."""

import datetime

import pytest

from refunds.models import RefundRequest, RefundStatus
from tests import factories
from tests.factories import RefundFactory

pytestmark = pytest.mark.django_db


def test_detail_has_the_documented_fields(api, agent):
    RefundFactory(requested_by=agent, merchant_refund_id="r-1", metadata={"k": "v"}, product="Mug")

    data = api(agent).get("/api/refunds/r-1/").json()

    assert set(data) == {
        "merchant_refund_id", "provider", "connector_transaction_id", "connector_refund_id", "status", "amount",
        "reason", "reason_code", "metadata", "product", "items", "requested_by", "origin", "created_at", "resolved_at", "approvals",
        "error", "disputed_at",
    }
    assert data["disputed_at"] is None  # set when a dispute opens after the refund succeeded
    assert data["amount"] == {"minor_amount": 1000, "currency": "USD"}
    assert data["metadata"] == {"k": "v"}
    assert data["items"] == []


def test_agents_see_only_their_own_requests(api, agent, manager, accountant):
    other = factories.agent(username="other-agent")
    RefundFactory(requested_by=agent, merchant_refund_id="mine")
    RefundFactory(requested_by=other, merchant_refund_id="theirs")

    mine = api(agent).get("/api/refunds/").json()
    assert [r["merchant_refund_id"] for r in mine["results"]] == ["mine"]
    assert api(agent).get("/api/refunds/theirs/").status_code == 404
    assert mine["count"] == 1
    assert {r["merchant_refund_id"] for r in api(manager).get("/api/refunds/").json()["results"]} == {"mine", "theirs"}
    assert api(accountant).get("/api/refunds/theirs/").status_code == 200


def test_filters_and_pagination(api, manager):
    for i in range(55):
        RefundFactory(merchant_refund_id=f"p-{i:02d}", status=RefundStatus.SUCCEEDED if i % 5 == 0 else RefundStatus.PENDING_APPROVAL)
    RefundFactory(merchant_refund_id="eur", currency="EUR")
    client = api(manager)

    page1 = client.get("/api/refunds/").json()
    page2 = client.get(page1["next"]).json()
    succeeded = client.get("/api/refunds/?status=succeeded").json()
    eur = client.get("/api/refunds/?currency=eur").json()
    bad = client.get("/api/refunds/?status=done")

    assert page1["count"] == 56 and len(page1["results"]) == 50 and len(page2["results"]) == 6
    assert page1["results"][0]["merchant_refund_id"] == "eur"  # newest first
    assert succeeded["count"] == 11
    assert [r["merchant_refund_id"] for r in eur["results"]] == ["eur"]
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"


@pytest.mark.parametrize("page", ["", "0", "-1", "two", "１", "9" * 10_000])
def test_a_page_that_is_not_a_whole_number_from_1_is_a_400_naming_it(api, manager, page):
    RefundFactory(merchant_refund_id="only")

    answer = api(manager).get(f"/api/refunds/?page={page}")

    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "page"


def test_filters_by_time_requester_product_and_transaction(api, manager):
    old = RefundFactory(merchant_refund_id="old", product="Mug")
    RefundFactory(merchant_refund_id="new", product="Teapot", requested_by=manager)
    RefundRequest.objects.filter(pk=old.pk).update(created_at=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    client = api(manager)

    def ids(query):
        response = client.get(f"/api/refunds/?{query}")
        assert response.status_code == 200, response.json()
        return [r["merchant_refund_id"] for r in response.json()["results"]]

    assert ids("created_before=2024-06-01T00:00:00Z") == ["old"]
    assert ids("created_after=2024-06-01T00:00:00%2B02:00") == ["new"]
    assert ids("created_after=2024-01-01T00:00:00") == ["new", "old"]  # naive is UTC; after is inclusive
    assert ids("mine=true") == ["new"] and ids("mine=0") == ["new", "old"]
    assert ids("product=Mug") == ["old"]
    assert ids(f"connector_transaction_id={old.connector_transaction_id}") == ["old"]
    assert ids("provider=stripe&status=pending_approval") == ["new", "old"]
    assert ids("provider=") == []


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("stauts=failed", "unknown_parameter", "stauts"),
        ("created_after=yesterday", "invalid", "created_after"),
        ("created_before=2024-13-01T00:00:00Z", "invalid", "created_before"),
        ("created_after=", "invalid", "created_after"),
        ("mine=yes", "invalid", "mine"),
        ("status=", "invalid", "status"),
        ("product=a%00b", "invalid_characters", "product"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(api, manager, query, code, field):
    answer = api(manager).get(f"/api/refunds/?{query}")

    assert answer.status_code == 400
    assert (answer.json()["error"]["code"], answer.json()["error"]["field"]) == (code, field)
    assert answer.json()["error"]["message"]
