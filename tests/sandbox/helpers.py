"""Helpers shared by the Stripe sandbox's tests (their fixtures are in conftest.py)."""

import http.server
import threading
import time
import uuid

import stripe

WEBHOOK_SECRET = "whsec_sandbox_test"
REFUND_EVENT_TYPES = {"refund.created", "charge.refunded", "refund.updated",
                      "charge.refund.updated", "refund.failed"}


def new_key():
    return f"test-{uuid.uuid4()}"


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.05)
    return value


def create_refund(client, idempotency_key=None, **params):
    return client.v1.refunds.create(
        params=params, options={"idempotency_key": idempotency_key or new_key()})


def refund_ids(client, **params):
    return [r.id for r in client.v1.refunds.list(params=params).data]


def charge_of(client, payment_intent):
    return client.v1.payment_intents.retrieve(
        payment_intent, params={"expand": ["latest_charge"]}).latest_charge


class WebhookReceiver:
    """A local HTTP endpoint that records (payload, Stripe-Signature)."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, self.headers["Stripe-Signature"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, object_ids=None):
        """Verified events (about object_ids, if given), in arrival order."""
        events = [stripe.Webhook.construct_event(payload, signature,
                                                 WEBHOOK_SECRET)
                  for payload, signature in list(self.received)]
        return [e for e in events
                if object_ids is None or e.data.object.id in object_ids]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
