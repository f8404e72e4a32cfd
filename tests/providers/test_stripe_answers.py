"""The Stripe adapter reads Stripe's answers as the JSON the SDK parsed (StripeProvider._call),
not as the SDK's typed objects: what it reads must be what those objects say, every page of a
list must be walked, and the idempotency key must still reach Stripe. Its threads share one HTTP
session that reads the environment once: many threads at once each get their own answer, and a
proxy set in the environment is still used (and NO_PROXY still honoured)."""

import base64
import http.client
import threading
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refunds.providers import get_provider
from refunds.providers.base import Money, ProviderRefundStatus
from refunds.providers.stripe import StripeProvider
from tests.providers.relay import send_answer

pytestmark = pytest.mark.django_db


def _refund(adapter, payment: str, minor: int, merchant_refund_id: str, key: str | None = None):
    return adapter.create_refund(
        merchant_refund_id=merchant_refund_id, connector_transaction_id=payment, amount=Money(minor, "USD"),
        reason="requested_by_customer", metadata={"ticket": "T-1"}, idempotency_key=key or uuid.uuid4().hex,
    )


def test_what_the_adapter_reads_is_what_the_sdks_objects_say(stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(9_000, metadata={"product": "Plan B"}, customer=stripe_sandbox.create_customer())
    adapter = get_provider("stripe")
    made = _refund(adapter, pi, 1_250, "mr-answers-1")
    stripe_sandbox.open_dispute(pi, amount=3_000, reason="fraudulent")

    sdk = stripe_sandbox.client()
    intent = sdk.v1.payment_intents.retrieve(pi, params={"expand": ["latest_charge"]})
    charge = intent.latest_charge
    refund = sdk.v1.refunds.retrieve(made.connector_refund_id)
    [dispute] = sdk.v1.disputes.list(params={"charge": charge.id}).data

    payment = adapter.get_payment(connector_transaction_id=pi)
    assert (payment.connector_transaction_id, payment.aliases) == (pi, (charge.id,))
    assert payment.amount == Money(charge.amount, charge.currency.upper()) == Money(9_000, "USD")
    assert payment.amount_refunded == charge.amount_refunded == 1_250
    assert (payment.status, payment.customer) == (intent.status, intent.customer)
    assert payment.customer.startswith("cus_")
    assert payment.metadata == intent.metadata.to_dict() and payment.product == "Plan B"
    assert payment.dispute is not None and payment.dispute.is_open
    assert (payment.dispute.dispute_id, payment.dispute.provider_status, payment.dispute.reason) == (
        dispute.id, dispute.status, "fraudulent"
    )
    assert payment.dispute.amount == Money(dispute.amount, dispute.currency.upper()) == Money(3_000, "USD")

    asked = adapter.get_refund(connector_refund_id=made.connector_refund_id)
    assert asked == made
    assert (asked.connector_refund_id, asked.amount, asked.connector_transaction_id) == (
        refund.id, Money(refund.amount, refund.currency.upper()), refund.payment_intent
    )
    assert asked.merchant_refund_id == refund.metadata["merchant_refund_id"] == "mr-answers-1"
    assert asked.status in (ProviderRefundStatus.PENDING, ProviderRefundStatus.SUCCEEDED)

    by_charge = adapter.get_payment(connector_transaction_id=charge.id)
    assert (by_charge.connector_transaction_id, by_charge.aliases, by_charge.amount_refunded) == (pi, (charge.id,), 1_250)


def test_a_payments_refunds_are_read_past_the_first_page(stripe_sandbox, stripe_sandbox_clean):
    """Stripe lists 100 at most a page, newest first: the first refund made is on the second page."""
    pi = stripe_sandbox.create_payment(50_000)
    adapter = get_provider("stripe")
    made = [_refund(adapter, pi, 10 + n, f"mr-page-{n}") for n in range(103)]

    listed = adapter.list_refunds(connector_transaction_id=pi)

    assert sorted(r.connector_refund_id for r in listed) == sorted(r.connector_refund_id for r in made)
    assert len({r.connector_refund_id for r in listed}) == 103
    first = adapter.find_refund(merchant_refund_id="mr-page-0", connector_transaction_id=pi)
    assert first is not None and first.connector_refund_id == made[0].connector_refund_id
    assert first.amount == Money(10, "USD")


def test_the_idempotency_key_still_reaches_stripe(stripe_sandbox, stripe_sandbox_clean):
    pi = stripe_sandbox.create_payment(6_000)
    adapter = get_provider("stripe")
    key = uuid.uuid4().hex

    once = _refund(adapter, pi, 2_000, "mr-key", key=key)
    again = _refund(adapter, pi, 2_000, "mr-key", key=key)

    assert again.connector_refund_id == once.connector_refund_id
    assert [r.connector_refund_id for r in adapter.list_refunds(connector_transaction_id=pi)] == [once.connector_refund_id]
    assert adapter.get_payment(connector_transaction_id=pi).amount_refunded == 2_000


def test_threads_calling_at_once_each_get_their_own_answer(stripe_sandbox, stripe_sandbox_clean):
    """A worker's 24 threads share the adapter and its one session."""
    amounts = [5_000 + 7 * n for n in range(24)]
    payments = [stripe_sandbox.create_payment(amount) for amount in amounts]
    adapter = get_provider("stripe")
    start = threading.Barrier(24)

    def look_up(pi):
        start.wait(timeout=10)
        return [adapter.get_payment(connector_transaction_id=pi).amount.minor_amount for _ in range(3)]

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(look_up, payments))

    assert answers == [[amount] * 3 for amount in amounts]


class _Proxy(BaseHTTPRequestHandler):
    """A forwarding HTTP proxy that counts what it forwards."""

    seen: list = []
    authorizations: list = []

    def _forward(self):
        target = urllib.parse.urlsplit(self.path)  # a proxy is asked for the whole URL
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, f"{target.path}?{target.query}" if target.query else target.path, body, headers)
        answer = upstream.getresponse()
        data = answer.read()
        _Proxy.seen.append((self.command, target.path))
        _Proxy.authorizations.append(self.headers.get("Proxy-Authorization"))
        send_answer(self, answer, data)

    do_GET = do_POST = _forward

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Proxy.seen, _Proxy.authorizations = [], []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "how", ["HTTP(S)_PROXY", "NO_PROXY", "ALL_PROXY", "user:password in the proxy's URL"]
)
def test_a_proxy_in_the_environment_is_used_as_requests_would_use_it(
    stripe_sandbox, stripe_sandbox_clean, proxy, monkeypatch, how
):
    bypassed = how == "NO_PROXY"
    pi = stripe_sandbox.create_payment(4_200)  # the test's own call, before the environment names a proxy
    with monkeypatch.context() as env:  # undone before the sandbox's own teardown calls
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            env.delenv(name, raising=False)
            env.delenv(name.lower(), raising=False)
        if how == "ALL_PROXY":
            env.setenv("ALL_PROXY", proxy)
        else:
            named = proxy.replace("http://", "http://agent%40desk:p%3Ass@") if "password" in how else proxy
            env.setenv("HTTP_PROXY", named)
            env.setenv("HTTPS_PROXY", named)
        if bypassed:
            env.setenv("NO_PROXY", "127.0.0.1,localhost")
        adapter = StripeProvider.from_settings()  # made after the environment is set, as at a process's start

        assert adapter.get_payment(connector_transaction_id=pi).amount == Money(4_200, "USD")
        made = adapter.create_refund(
            merchant_refund_id="mr-proxy", connector_transaction_id=pi, amount=Money(200, "USD"), reason="",
            metadata={}, idempotency_key=uuid.uuid4().hex,
        )

    sent = "Basic " + base64.b64encode(b"agent@desk:p:ss").decode() if "password" in how else None
    assert _Proxy.authorizations == ([] if bypassed else [sent, sent])
    assert made.amount == Money(200, "USD")
    assert _Proxy.seen == ([] if bypassed else [("GET", f"/v1/payment_intents/{pi}"), ("POST", "/v1/refunds")])


def test_a_certificate_stripes_bundle_does_not_trust_is_refused(tmp_path):
    """TLS is verified against the SDK's CA bundle: a server with a self-signed certificate is a
    network failure (transient, nothing sent to it), not a Stripe that answered."""
    import ssl
    import subprocess

    from refunds.providers.base import TransientProviderError

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    _Proxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        adapter = StripeProvider(api_key="sk_test_x", api_base=f"https://127.0.0.1:{server.server_address[1]}", timeout=5)
        with pytest.raises(TransientProviderError) as raised:
            adapter.get_payment(connector_transaction_id="pi_selfsigned")
    finally:
        server.shutdown()
        server.server_close()

    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert _Proxy.seen == []


@pytest.mark.parametrize("named", ["127.0.0.1:{port}", "http://agent:s3cret@", "gopher://agent:s3cret@127.0.0.1:{port}"],
                         ids=["no scheme (http, as requests reads it)", "no host", "an unknown scheme"])
def test_a_proxy_setting_is_read_as_requests_reads_it_or_each_call_fails_as_a_network_error(
    stripe_sandbox, stripe_sandbox_clean, proxy, monkeypatch, named
):
    """Never an error when the adapter is made (that would be a 500 on every request): a proxy
    setting that cannot be used fails each call as Stripe being out of reach (transient), and says
    so without repeating the setting, which may hold a password."""
    from refunds.providers.base import TransientProviderError

    pi = stripe_sandbox.create_payment(4_200)
    port = proxy.rsplit(":", 1)[1]
    with monkeypatch.context() as env:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            env.delenv(name, raising=False)
            env.delenv(name.lower(), raising=False)
        env.setenv("HTTP_PROXY", named.format(port=port))
        adapter = StripeProvider.from_settings()
        if named.startswith("127.0.0.1"):
            assert adapter.get_payment(connector_transaction_id=pi).amount == Money(4_200, "USD")
            assert _Proxy.seen == [("GET", f"/v1/payment_intents/{pi}")]
        else:
            with pytest.raises(TransientProviderError) as raised:
                adapter.get_payment(connector_transaction_id=pi)
            assert "proxy" in str(raised.value) and "s3cret" not in str(raised.value)
            assert _Proxy.seen == []
