"""Start the sandbox as its own process and drive it over HTTP.

Used by the pytest fixture and the benchmark. Imports no localstripe code.
"""

import contextlib
import sys

import requests
import stripe

from devtools.process import serve

from . import BEHAVIOR_METADATA_KEY, DEFAULT_API_KEY, REFUND_BEHAVIORS

READY_PREFIX = b"stripe-sandbox listening on "


class SandboxError(RuntimeError):
    pass


class Sandbox:
    """A running sandbox: SDK clients, test payments and /_config calls."""

    def __init__(self, base_url, api_key=DEFAULT_API_KEY,
                 settle_seconds=None, pid=None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.settle_seconds = settle_seconds
        self.pid = pid  # of the process, when launch() started it
        self._http = requests.Session()
        self._sdk = None

    def client(self, timeout: float = 10.0) -> stripe.StripeClient:
        """A StripeClient configured the way the app configures its own."""
        return stripe.StripeClient(
            api_key=self.api_key, base_addresses={"api": self.base_url},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout))

    def create_payment(self, amount: int, currency: str = "usd",
                       behavior: str | None = None,
                       metadata: dict | None = None,
                       payment_method: str = "pm_card_visa",
                       customer: str | None = None) -> str:
        """Create a succeeded PaymentIntent (with a charge); return its id. `customer`: the id of
        a customer (create_customer()) the payment belongs to."""
        metadata = dict(metadata or {})
        if behavior is not None:
            if behavior not in REFUND_BEHAVIORS:
                raise ValueError(f"unknown refund behavior {behavior!r}")
            metadata[BEHAVIOR_METADATA_KEY] = behavior
        if self._sdk is None:
            self._sdk = self.client()
        intent = self._sdk.v1.payment_intents.create(params={
            "amount": amount, "currency": currency,
            "payment_method": payment_method,
            "payment_method_types": ["card"], "confirm": True,
            "metadata": metadata, **({"customer": customer} if customer else {})})
        if intent.status != "succeeded":
            raise SandboxError(f"{intent.id} is {intent.status}")
        return intent.id

    def create_customer(self, email: str = "customer@example.com") -> str:
        """Create a customer; return its id (cus_...)."""
        if self._sdk is None:
            self._sdk = self.client()
        return self._sdk.v1.customers.create(params={"email": email}).id

    # /_config ---------------------------------------------------------------

    def _config(self, method, path, payload=None):
        response = self._http.request(method, f"{self.base_url}/_config/{path}",
                                      json=payload, timeout=10)
        if response.status_code >= 400:
            raise SandboxError(f"{method} /_config/{path}: "
                               f"{response.status_code} {response.text}")
        return response.json() if response.content else None

    def add_fault(self, status: int | None = None, *, count: int | None = 1,
                  delay_seconds: float | None = None,
                  path_prefix: str = "/v1", methods: list | None = None,
                  after: bool = False) -> list:
        """Add a fault rule; see the README. Returns all rules."""
        return self._config("POST", "faults", {
            "status": status, "count": count, "delay_seconds": delay_seconds,
            "path_prefix": path_prefix, "methods": methods,
            "after": after})["faults"]

    def set_faults(self, status: int | None = None, **rule) -> list:
        """Replace all fault rules by one (arguments as add_fault)."""
        self.clear_faults()
        return self.add_fault(status, **rule)

    def clear_faults(self) -> None:
        self._config("DELETE", "faults")

    def set_rate_limit(self, per_second: float | None) -> None:
        self._config("POST", "rate_limit", {"per_second": per_second})

    def reset_config(self) -> None:
        """No faults, no rate limit (the data stays)."""
        self.clear_faults()
        self.set_rate_limit(None)

    def stats(self) -> dict:
        return self._config("GET", "stats")

    def reset_stats(self) -> None:
        self._config("DELETE", "stats")

    def settle(self, refund_id: str, status: str,
               failure_reason: str | None = None) -> dict:
        """Force a pending refund to succeeded, failed or canceled."""
        payload = {"status": status}
        if failure_reason:
            payload["failure_reason"] = failure_reason
        return self._config("POST", f"refunds/{refund_id}/settle", payload)

    def set_webhook(self, url: str, secret: str, events: list | None = None,
                    webhook_id: str = "sandbox") -> None:
        payload = {"url": url, "secret": secret}
        if events is not None:
            payload["events"] = events
        self._config("POST", f"webhooks/{webhook_id}", payload)

    def remove_webhook(self, webhook_id: str = "sandbox") -> None:
        self._config("DELETE", f"webhooks/{webhook_id}")

    def expire_idempotency_keys(self, key: str | None = None) -> int:
        """Forget every idempotency key (or `key`), as Stripe does after ~24 hours; returns
        how many were forgotten."""
        return self._config("POST", "idempotency/expire", {"key": key} if key else {})["expired"]

    def open_dispute(self, payment: str, *, amount: int | None = None,
                     reason: str = "general", inquiry: bool = False) -> dict:
        """Open a dispute on a payment (pi_… or ch_…), as a cardholder's bank would: a
        chargeback (needs_response, money withdrawn, refunds refused with
        charge_disputed) or, with `inquiry`, a warning_needs_response inquiry. Sends
        charge.dispute.created (and .funds_withdrawn). Returns the Dispute."""
        key = "payment_intent" if payment.startswith("pi_") else "charge"
        payload = {key: payment, "reason": reason, "inquiry": inquiry}
        if amount is not None:
            payload["amount"] = amount
        return self._config("POST", "disputes", payload)

    def close_dispute(self, dispute_id: str, status: str) -> dict:
        """Close a dispute `won` or `lost`; sends charge.dispute.closed."""
        return self._config("POST", f"disputes/{dispute_id}/close", {"status": status})

    def reset_data(self) -> None:
        """Delete every object, idempotency key and counter."""
        self._config("DELETE", "data")


@contextlib.contextmanager
def launch(*args: str, settle_seconds: float | None = None,
           api_key: str = DEFAULT_API_KEY, log_path=None, quiet=False,
           startup_timeout: float = 20.0):
    """Run `python -m devtools.stripe_sandbox` on a free 127.0.0.1 port.

    Yields a Sandbox; stops the process on exit, also after errors. `args`
    are more command-line options (e.g. "--state-file", path).
    """
    command = [sys.executable, "-m", "devtools.stripe_sandbox",
               "--host", "127.0.0.1", "--port", "0", *args]
    if settle_seconds is not None:
        command += ["--settle-seconds", str(settle_seconds)]
    if quiet:
        command.append("--quiet")
    with serve(command, ready_prefix=READY_PREFIX, error=SandboxError, name="stripe sandbox",
               log_path=log_path, startup_timeout=startup_timeout) as (base_url, pid):
        yield Sandbox(base_url, api_key, settle_seconds, pid)
