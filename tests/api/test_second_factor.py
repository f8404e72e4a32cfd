"""API decisions need a fresh second factor: the token's user confirms through that token with
POST /api/second-factor/ {"code": ...}; decisions through it then work for
SECOND_FACTOR_MAX_AGE_SECONDS, and answer 403 `second_factor_required` before and after."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from refunds.models import ApiToken, RefundStatus
from tests.factories import RefundFactory
from tests.second_factor import current_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(agent):
    return RefundFactory(requested_by=agent, amount_minor=9000, merchant_refund_id="big-1")


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_an_unconfirmed_token_cannot_decide(api, manager, pending, verb):
    client = api(manager, second_factor=False)

    answer = client.post(f"/api/refunds/big-1/{verb}/", {"comment": "because"}, format="json")

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "second_factor_required"
    pending.refresh_from_db()
    assert pending.status == RefundStatus.PENDING_APPROVAL and not pending.approvals.exists()


def test_an_unconfirmed_token_still_reads(api, manager, pending):
    client = api(manager, second_factor=False)

    assert client.get("/api/refunds/big-1/").status_code == 200
    assert client.get("/api/refunds/").json()["count"] == 1


def test_confirming_then_deciding(api, manager, pending, settings):
    settings.SECOND_FACTOR_MAX_AGE_SECONDS = 15 * 60
    client = api(manager, second_factor=False)

    confirmed = client.post("/api/second-factor/", {"code": current_code(manager)}, format="json")
    approved = client.post("/api/refunds/big-1/approve/", {"comment": "ok"}, format="json")

    assert confirmed.status_code == 200
    until = parse_datetime(confirmed.json()["verified_until"])
    assert timedelta(minutes=14) < until - timezone.now() <= timedelta(minutes=15)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"


def test_after_the_window_the_token_must_confirm_again(api, manager, agent, settings):
    settings.SECOND_FACTOR_MAX_AGE_SECONDS = 15 * 60
    first = RefundFactory(requested_by=agent, amount_minor=9000, merchant_refund_id="first")
    RefundFactory(requested_by=agent, amount_minor=9000, merchant_refund_id="second")
    client = api(manager)
    assert client.post("/api/refunds/first/approve/", {}, format="json").status_code == 200

    ApiToken.objects.filter(user=manager).update(
        second_factor_at=timezone.now() - timedelta(minutes=15, seconds=1)
    )
    late = client.post("/api/refunds/second/approve/", {}, format="json")
    client.post("/api/second-factor/", {"code": current_code(manager)}, format="json")
    again = client.post("/api/refunds/second/approve/", {}, format="json")

    assert late.status_code == 403 and late.json()["error"]["code"] == "second_factor_required"
    assert again.status_code == 200
    first.refresh_from_db()
    assert first.status == RefundStatus.APPROVED


def test_a_confirmation_belongs_to_its_token(api, manager, pending):
    api(manager)  # one token confirmed

    other = api(manager, second_factor=False).post("/api/refunds/big-1/approve/", {}, format="json")

    assert other.status_code == 403 and other.json()["error"]["code"] == "second_factor_required"


def test_a_wrong_code_is_refused_and_the_next_try_waits(api, manager, pending):
    client = api(manager, second_factor=False)

    wrong = client.post("/api/second-factor/", {"code": _wrong(current_code(manager))}, format="json")
    right_too_soon = client.post("/api/second-factor/", {"code": current_code(manager)}, format="json")
    decision = client.post("/api/refunds/big-1/approve/", {}, format="json")

    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "second_factor_invalid"
    assert right_too_soon.status_code == 429
    assert right_too_soon.json()["error"]["code"] == "second_factor_throttled"
    assert decision.status_code == 403


@pytest.mark.parametrize("code", ["12345", "1234567890", "abcdef", "", 123456, None])
def test_malformed_codes_are_400(api, manager, code):
    answer = api(manager, second_factor=False).post("/api/second-factor/", {"code": code}, format="json")

    assert answer.status_code == 400 and answer.json()["error"]["field"] == "code"


def test_someone_without_an_authenticator_is_told_to_set_one_up(api, agent):
    answer = api(agent).post("/api/second-factor/", {"code": "123456"}, format="json")

    assert answer.status_code == 403 and answer.json()["error"]["code"] == "second_factor_not_set_up"


def test_a_session_confirmed_on_the_web_page_decides_through_the_api(client, manager, pending):
    client.force_login(manager)
    refused = client.post("/api/refunds/big-1/approve/", {}, content_type="application/json")
    client.post("/accounts/second-factor/", {"code": current_code(manager), "next": "/refunds/"})
    approved = client.post("/api/refunds/big-1/approve/", {}, content_type="application/json")

    assert refused.status_code == 403 and refused.json()["error"]["code"] == "second_factor_required"
    assert approved.status_code == 200
