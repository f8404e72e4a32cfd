"""A Stripe answer we cannot read (a 200 whose JSON lacks a field the adapter reads, or holds
another shape) is a transient provider error, as an outage is: intake accepts the refund
unverified when an amount was given and answers 503 `provider_unavailable` when not (never a
500), and the worker asks again with the same idempotency key, so a refund Stripe made behind an
unreadable answer is still made once.

The answers come from a forwarder in front of the sandbox that rewrites the JSON of the calls
named in `_Mangler.rules`; every other call goes through untouched."""

import http.client
import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refunds.models import RefundLog, RefundRequest, RefundStatus
from refunds.money import Money
from refunds.providers import get_provider
from refunds.providers.base import TransientProviderError
from refunds.services import execution, intake
from tests.providers.relay import send_answer

pytestmark = pytest.mark.django_db


class _Mangler(BaseHTTPRequestHandler):
    upstream = ""
    rules: list = []  # (method, path prefix, function of the parsed answer -> the answer sent)

    def _forward(self):
        target = urllib.parse.urlsplit(_Mangler.upstream)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
        connection.request(self.command, self.path, body, headers)
        answer = connection.getresponse()
        data = answer.read()
        path = urllib.parse.urlsplit(self.path).path
        for method, prefix, mangle in _Mangler.rules:
            if self.command == method and path.startswith(prefix) and answer.status == 200:
                data = mangle(json.loads(data))
                data = data if isinstance(data, bytes) else json.dumps(data).encode()  # bytes: sent as they are
                break
        send_answer(self, answer, data)

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, *args):
        pass


@pytest.fixture
def mangled(stripe_sandbox, settings):
    """mangled(method, path_prefix, function): Stripe's answers to those calls, rewritten. The
    app's Stripe adapter talks to the forwarder from here on."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mangler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Mangler.upstream, _Mangler.rules = stripe_sandbox.base_url, []
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{server.server_address[1]}"

    def add(method, prefix, mangle):
        _Mangler.rules.append((method, prefix, mangle))

    yield add
    server.shutdown()
    server.server_close()


def _without(*names):
    return lambda answer: {k: v for k, v in answer.items() if k not in names}


def _charge_without(*names):
    def mangle(intent):
        return {**intent, "latest_charge": _without(*names)(intent["latest_charge"])}

    return mangle


UNREADABLE_PAYMENTS = {
    "an empty object": lambda answer: {},
    "a list": lambda answer: [answer],
    "a bare string": lambda answer: "ok",
    "no amount on the charge": _charge_without("amount"),
    "no currency on the charge": _charge_without("currency"),
    "the amount as words": lambda intent: {**intent, "latest_charge": {**intent["latest_charge"], "amount": "lots"}},
    "the charge as a number": lambda intent: {**intent, "latest_charge": 7},
    "metadata as a list": lambda intent: {**intent, "metadata": [1, 2, 3]},
    "not JSON": lambda answer: b"<html>Bad gateway, but said with a 200</html>",
    "JSON cut short": lambda answer: json.dumps(answer).encode()[:40],
}


@pytest.mark.parametrize("mangle", UNREADABLE_PAYMENTS.values(), ids=UNREADABLE_PAYMENTS.keys())
def test_an_unreadable_payment_is_a_transient_error(stripe_sandbox, stripe_sandbox_clean, mangled, mangle):
    pi = stripe_sandbox.create_payment(5_000)
    mangled("GET", "/v1/payment_intents/", mangle)

    with pytest.raises(TransientProviderError) as raised:
        get_provider("stripe").get_payment(connector_transaction_id=pi)

    assert raised.value.code == "unreadable_answer"
    said = str(raised.value)  # ours for JSON without what we read, the SDK's for a body that is not JSON
    assert "Stripe's answer to a payment could not be read" in said or "Invalid response body from API" in said


@pytest.mark.parametrize(
    "mangle", [_charge_without("amount"), lambda answer: [answer]], ids=["no amount on the charge", "a list"]
)
def test_intake_accepts_unverified_when_the_payment_cannot_be_read(
    api, agent, stripe_sandbox, stripe_sandbox_clean, mangled, mangle
):
    pi = stripe_sandbox.create_payment(10_000)
    mangled("GET", "/v1/payment_intents/", mangle)

    response = api(agent).post("/api/refunds/", _body(pi, amount={"minor_amount": 1_250, "currency": "USD"}), format="json")

    assert response.status_code == 201, response.json()
    refund = RefundRequest.objects.get()
    assert (refund.amount_minor, refund.currency, refund.payment_verified) == (1_250, "USD", False)


def test_intake_answers_503_for_a_full_refund_of_a_payment_it_cannot_read(
    api, agent, stripe_sandbox, stripe_sandbox_clean, mangled
):
    pi = stripe_sandbox.create_payment(10_000)
    mangled("GET", "/v1/payment_intents/", lambda answer: {})

    response = api(agent).post("/api/refunds/", _body(pi, amount=None), format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert not RefundRequest.objects.exists()


def _body(pi, *, amount):
    body = {
        "merchant_refund_id": f"unreadable-{uuid.uuid4().hex[:12]}",
        "provider": "stripe",
        "connector_transaction_id": pi,
        "reason": "Customer returned the item",
    }
    if amount is not None:
        body["amount"] = amount
    return body


@pytest.mark.parametrize(
    "mangle",
    [_without("status"), _without("amount"), lambda answer: {"error": None}, lambda answer: None,
     lambda answer: b"<html>upstream timed out</html>"],
    ids=["no status", "no amount", "no refund at all", "null", "not JSON"],
)
def test_a_refund_made_behind_an_unreadable_answer_is_made_once(
    agent, stripe_sandbox, stripe_sandbox_clean, mangled, settings, mangle
):
    """Stripe made the refund; its answer could not be read. The worker logs a provider error and
    asks again later with the same idempotency key: Stripe answers with the refund it made."""
    pi = stripe_sandbox.create_payment(10_000)
    refund, _ = intake.refund_request_create(
        merchant_refund_id=f"unreadable-{pi}", provider="stripe", connector_transaction_id=pi,
        amount=Money(2_000, "USD"), reason="requested_by_customer", metadata={}, product="", requested_by=agent,
    )
    assert refund.status == RefundStatus.APPROVED
    mangled("POST", "/v1/refunds", mangle)

    with pytest.raises(TransientProviderError):
        execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status not in (RefundStatus.SUCCEEDED, RefundStatus.FAILED)
    error = refund.logs.get(event=RefundLog.Event.PROVIDER_ERROR)
    assert "unreadable_answer" in json.dumps(error.data) + error.message
    _Mangler.rules = []  # Stripe's answers are readable again
    RefundRequest.objects.filter(pk=refund.pk).update(next_action_at=None, call_started_at=None)

    execution.refund_submit(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    made = stripe_sandbox.client().v1.refunds.list(params={"payment_intent": pi}).data
    assert [(r.id, r.amount) for r in made] == [(refund.connector_refund_id, 2_000)]


def test_an_unreadable_status_answer_is_logged_and_polled_again(agent, stripe_sandbox, stripe_sandbox_clean, mangled):
    pi = stripe_sandbox.create_payment(10_000, behavior="stay_pending")
    refund, _ = intake.refund_request_create(
        merchant_refund_id=f"unreadable-poll-{pi}", provider="stripe", connector_transaction_id=pi,
        amount=Money(2_000, "USD"), reason="requested_by_customer", metadata={}, product="", requested_by=agent,
    )
    execution.refund_submit(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING
    stripe_sandbox.settle(refund.connector_refund_id, "succeeded")
    mangled("GET", "/v1/refunds/", lambda answer: {"id": answer["id"]})

    execution.refund_sync_status(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING
    error = refund.logs.filter(event=RefundLog.Event.PROVIDER_ERROR).get()
    assert error.data == {"code": "unreadable_answer"} and "Status check failed" in error.message
    _Mangler.rules = []

    execution.refund_sync_status(refund_id=refund.pk)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED


def test_an_unreadable_list_of_refunds_is_a_transient_error(stripe_sandbox, stripe_sandbox_clean, mangled):
    pi = stripe_sandbox.create_payment(10_000)
    adapter = get_provider("stripe")
    adapter.create_refund(
        merchant_refund_id="mr-list", connector_transaction_id=pi, amount=Money(500, "USD"), reason="",
        metadata={}, idempotency_key=uuid.uuid4().hex,
    )
    mangled("GET", "/v1/refunds", lambda page: {**page, "data": "not a list of refunds"})

    with pytest.raises(TransientProviderError) as raised:
        adapter.find_refund(merchant_refund_id="mr-list", connector_transaction_id=pi)

    assert raised.value.code == "unreadable_answer"


def test_a_payment_without_a_charge_is_refused_not_taken_for_an_unreadable_answer(
    api, agent, stripe_sandbox, stripe_sandbox_clean, mangled
):
    """Stripe sends `latest_charge: null` for a PaymentIntent never charged (a 400 the agent can
    act on); an answer without the field at all is one we cannot read (503 for a full refund)."""
    never_charged, unreadable = stripe_sandbox.create_payment(10_000), stripe_sandbox.create_payment(10_000)
    mangled("GET", f"/v1/payment_intents/{never_charged}", lambda intent: {**intent, "latest_charge": None})
    mangled("GET", f"/v1/payment_intents/{unreadable}", _without("latest_charge"))
    client = api(agent)

    refused = client.post("/api/refunds/", _body(never_charged, amount=None), format="json")
    unanswered = client.post("/api/refunds/", _body(unreadable, amount=None), format="json")

    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "payment_not_captured")
    assert (unanswered.status_code, unanswered.json()["error"]["code"]) == (503, "provider_unavailable")
    assert not RefundRequest.objects.exists()
