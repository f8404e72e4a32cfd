"""POST /webhooks/stripe/ with validly signed bodies that are not events Refund Office can use:
each is a 400 (or 413) in JSON with a code, so Stripe stops retrying (it retries a 5xx for
days), and nothing is stored. Events of the sizes Stripe sends are taken."""

import json

import pytest

from refunds.models import WebhookEvent
from tests.hostile.values import deep_json
from tests.refunds.test_webhooks import SECRET, URL, sign

pytestmark = pytest.mark.django_db
EVENT = {"id": "evt_1", "object": "event", "type": "charge.refunded",
         "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "metadata": {}}}}


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def post(client, body: bytes):
    return client.post(URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))


def event_with(**changes) -> bytes:
    return json.dumps({**EVENT, **changes}).encode()


@pytest.mark.parametrize("body, code, field", [
    (json.dumps({k: v for k, v in EVENT.items() if k != "id"}).encode(), "invalid_payload", "id"),
    (event_with(id=""), "invalid_payload", "id"),
    (event_with(id=12), "invalid_payload", "id"),
    (event_with(id="evt_\u0000"), "invalid_payload", "id"),
    (event_with(type=None), "invalid_payload", "type"),
    (event_with(data=[1]), "invalid_payload", "data.object"),
    (event_with(data={"object": "ch_1"}), "invalid_payload", "data.object"),
    (event_with(data={"object": {"id": "ch_1", "metadata": {"note": "a\u0000b"}}}), "invalid_payload",
     "data.object.metadata.note"),
    (event_with(data={"object": {"id": "ch_1", "metadata": {"k\u0000": "v"}}}), "invalid_payload", None),
    (json.dumps({**EVENT, "note": "\ud800"}).encode(), "invalid_payload", "note"),
    (json.dumps([EVENT]).encode(), "invalid_payload", None),
    (b'"evt_1"', "invalid_payload", None),
    (b"null", "invalid_payload", None),
    (event_with(amount=1).replace(b"1}", b"NaN}"), "invalid_payload", None),
    (event_with(amount=1).replace(b"1}", b"1e400}"), "invalid_payload", None),
    (b"\xff\xfe not utf-8", "invalid_payload", None),
    (deep_json(), "json_too_deep", None),
    (event_with(data={"object": json.loads(deep_json(40))}), "json_too_deep", None),
])
def test_a_signed_body_that_is_no_usable_event_is_a_400_with_a_code(client, body, code, field):
    body = body.encode() if isinstance(body, str) else body
    response = post(client, body)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    if field:
        assert error["field"] == field
    assert not WebhookEvent.objects.exists()


def test_events_of_the_sizes_stripe_sends_are_taken(client):
    """A snapshot event carries its whole object; 50 metadata keys of 500 characters on each of
    several embedded objects is a few hundred KB, far over the forms' 64 KB."""
    metadata = {f"key{i}": "x" * 500 for i in range(50)}
    refunds = [{"id": f"re_{i}", "object": "refund", "metadata": metadata} for i in range(10)]
    body = event_with(data={"object": {**EVENT["data"]["object"], "metadata": metadata,
                                       "refunds": {"object": "list", "data": refunds}}})
    assert len(body) > 256 * 1024

    response = post(client, body)

    assert response.status_code == 200 and response.json()["event"] == "evt_1"
    assert WebhookEvent.objects.get().payload["data"]["object"]["refunds"]["data"][9]["id"] == "re_9"


def test_a_body_over_the_limit_is_a_json_413(client, settings):
    settings.WEBHOOK_MAX_BYTES = 100_000
    body = event_with(note="x" * 100_000)

    response = post(client, body)

    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert not WebhookEvent.objects.exists()
