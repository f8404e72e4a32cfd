"""Stripe adapter over the official SDK. Any Stripe-compatible API works through
STRIPE_API_BASE (the local sandbox in development and tests)."""

from __future__ import annotations

import contextlib
import datetime
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping

import stripe
from django.conf import settings

from refunds.redaction import redact
from refunds.providers.base import (
    DisputeInfo,
    DisputeState,
    LineItem,
    Money,
    PaymentInfo,
    PermanentProviderError,
    ProviderEvent,
    ProviderRefundStatus,
    RefundProvider,
    RefundResult,
    SoldPayment,
    TransactionNotFound,
    TransientProviderError,
    WebhookRejected,
)
from refunds.providers.stripe_events import (
    DISPUTE_EVENT_TYPES,
    REFUND_EVENT_TYPES,
    event_from_body,
    event_transaction_ids,
)
from refunds.providers.stripe_http import Urllib3Client

# Stripe accepts only these refund reasons; free text travels in metadata instead.
STRIPE_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
# Our reason codes (refunds.reason_codes) as Stripe's reasons; a code not here sends none.
# STRIPE_REASON_BY_CODE adds to it or overrides it (codes a superuser made in the admin).
REASON_BY_CODE = {
    "duplicate_charge": "duplicate",
    "product_return": "requested_by_customer",
    "service_cancellation": "requested_by_customer",
    "goodwill": "requested_by_customer",
    "fraud": "fraudulent",
}

# Stripe's dispute statuses; any other (a new one) is taken as still open, the cautious reading.
_DISPUTE_STATE = {
    "won": DisputeState.WON,
    "lost": DisputeState.LOST,
    "warning_closed": DisputeState.CLOSED,
    "prevented": DisputeState.CLOSED,
}

_STATUS = {
    "pending": ProviderRefundStatus.PENDING,
    "requires_action": ProviderRefundStatus.REQUIRES_ACTION,
    "succeeded": ProviderRefundStatus.SUCCEEDED,
    "failed": ProviderRefundStatus.FAILED,
    "canceled": ProviderRefundStatus.CANCELED,
}

# Stripe codes that mean "the amount is wrong for this payment" (Prism's 422).
_AMOUNT_CODES = frozenset({"amount_too_large", "amount_too_small", "charge_already_refunded"})


def _error_message(error: stripe.StripeError) -> str:
    return redact(error.user_message or str(error) or error.__class__.__name__)[:500]


def translate_error(error: stripe.StripeError) -> Exception:
    """Map a Stripe SDK error to a transient or permanent provider error, keeping Stripe's code."""
    # SDK 16 leaves `code` empty on some error classes; the parsed body has it.
    code = error.code or getattr(getattr(error, "error", None), "code", None) or ""
    status = error.http_status or 0
    message = _error_message(error)
    if isinstance(error, stripe.RateLimitError) or status == 429:
        retry_after = (error.headers or {}).get("Retry-After")
        return TransientProviderError(
            message, code=code or "rate_limit", retry_after=float(retry_after) if retry_after else None
        )
    if isinstance(error, (stripe.APIConnectionError, stripe.AuthenticationError, stripe.PermissionError)) or (
        status == 409 and not isinstance(error, stripe.IdempotencyError)
    ):
        # 409: the same idempotency key is in flight elsewhere; asking again later is safe.
        # A bad key or a network fault will not be fixed by the customer: keep trying, then a person looks.
        return TransientProviderError(message, code=code or error.__class__.__name__.lower())
    if isinstance(error, stripe.APIError) and 0 < status < 400:
        # Not an error, yet not an answer the SDK could read (a 200 whose body is not JSON, a
        # redirect): the refund may have been made. Ask again later with the same key.
        return TransientProviderError(message, code="unreadable_answer")
    if status >= 500 or (isinstance(error, stripe.APIError) and not status):
        return TransientProviderError(message, code=code or f"http_{status or 'error'}")
    if status == 404 or code == "resource_missing":
        return TransactionNotFound(message, code=code or "resource_missing")
    if code == "charge_disputed":
        # A chargeback holds the payment: no refund until it is decided (Prism's 422).
        return PermanentProviderError(message, code="payment_disputed", http_status=422)
    if code in _AMOUNT_CODES:
        return PermanentProviderError(message, code=code, http_status=422)
    return PermanentProviderError(message, code=code or "invalid_request", http_status=402)


@contextlib.contextmanager
def _asking(what: str):
    """One exchange with Stripe, its failures as provider errors: Stripe's own (translate_error),
    and an answer we cannot read (a 200 whose JSON lacks a field we read, or holds another
    shape): transient, as an outage is, so intake accepts the refund unverified or answers 503,
    and the worker asks again with the same idempotency key, within its bounded attempts."""
    try:
        yield
    except stripe.StripeError as error:
        raise translate_error(error) from error
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise TransientProviderError(
            redact(f"Stripe's answer to {what} could not be read ({error.__class__.__name__}: {error})")[:300],
            code="unreadable_answer",
        ) from error


_TRANSACTION_ID = re.compile(r"^(pi|ch|py)_[A-Za-z0-9_\-]{1,252}$")


class StripeProvider(RefundProvider):
    name = "stripe"
    idempotent_create = True
    # One urllib3 pool for the process's threads (stripe_http.Urllib3Client).
    reusable = True
    lists_refunds = True
    finds_refunds = True
    lists_payments = True
    receives_webhooks = True
    reports_disputes = True
    transaction_id_pattern = r"^(pi|ch|py)_[A-Za-z0-9]+$"
    # PaymentIntents per list request (Stripe's maximum).
    list_page_size = 100

    @classmethod
    def validate_transaction_id(cls, value: str) -> str | None:
        if _TRANSACTION_ID.match(value):
            return None
        return "connector_transaction_id must be a Stripe PaymentIntent (pi_…) or Charge (ch_…) id."

    @classmethod
    def check_configuration(cls, settings) -> list[str]:
        problems = []
        if not settings.STRIPE_SECRET_KEY:
            problems.append("STRIPE_SECRET_KEY is empty.")
        if not settings.STRIPE_API_BASE:
            problems.append("STRIPE_API_BASE is empty.")
        return problems

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str,
        timeout: float,
        webhook_secret: str = "",
        webhook_tolerance: int = 300,
        reason_by_code: Mapping[str, str] | None = None,
        idempotency_key_trusted_for: datetime.timedelta = datetime.timedelta(hours=20),
    ):
        # Stripe prunes keys after at least 24 hours; the margin covers clocks and slow calls.
        self.idempotency_key_trusted_for = idempotency_key_trusted_for
        self._webhook_secret = webhook_secret
        self._webhook_tolerance = webhook_tolerance
        self._reason_by_code = {**REASON_BY_CODE, **(reason_by_code or {})}
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            # Retries belong to our task layer, where each one is logged and bounded.
            max_network_retries=0,
            http_client=Urllib3Client(timeout=timeout, api_base=api_base),
        )

    @classmethod
    def from_settings(cls) -> StripeProvider:
        return cls(
            api_key=settings.STRIPE_SECRET_KEY,
            api_base=settings.STRIPE_API_BASE,
            timeout=settings.STRIPE_TIMEOUT_SECONDS,
            webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
            webhook_tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
            reason_by_code=settings.STRIPE_REASON_BY_CODE,
            idempotency_key_trusted_for=datetime.timedelta(seconds=settings.STRIPE_IDEMPOTENCY_KEY_TRUST_SECONDS),
        )

    def create_refund(
        self,
        *,
        merchant_refund_id: str,
        connector_transaction_id: str,
        amount: Money | None,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
        items: list[LineItem] | None = None,
        reason_code: str = "",
    ) -> RefundResult:
        if items:
            raise PermanentProviderError("Stripe refunds have no invoice items.", code="items_not_supported")
        params: dict = {
            _payment_param(connector_transaction_id): connector_transaction_id,
            "metadata": {**metadata, "merchant_refund_id": merchant_refund_id},
        }
        if amount is not None:
            params["amount"] = amount.minor_amount
        stripe_reason = self._reason_by_code.get(reason_code) or reason
        if stripe_reason in STRIPE_REASONS:
            params["reason"] = stripe_reason
        with _asking("a refund"):
            return _refund_result(self._call("post", "/v1/refunds", idempotency_key=idempotency_key, **params))

    def get_refund(self, *, connector_refund_id: str, connector_transaction_id: str = "") -> RefundResult:
        with _asking("a refund"):
            return _refund_result(self._call("get", f"/v1/refunds/{_path_id(connector_refund_id)}"))

    def list_refunds(self, *, connector_transaction_id: str) -> list[RefundResult]:
        params: dict = {_payment_param(connector_transaction_id): connector_transaction_id, "limit": 100}
        found: list[RefundResult] = []
        with _asking("a list of refunds"):
            while True:  # every page, as the SDK's auto_paging_iter would walk them
                page = self._call("get", "/v1/refunds", **params)
                found += [_refund_result(refund) for refund in page["data"]]
                if not page.get("has_more") or not page["data"]:
                    return found
                params["starting_after"] = page["data"][-1]["id"]

    def find_refund(self, *, merchant_refund_id: str, connector_transaction_id: str) -> RefundResult | None:
        """Our refund among the payment's (create_refund puts merchant_refund_id in its
        metadata); one that holds money first, should there be more than one."""
        ours = [
            result
            for result in self.list_refunds(connector_transaction_id=connector_transaction_id)
            if result.merchant_refund_id == merchant_refund_id
        ]
        gave_back = (ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED)
        return next((r for r in ours if r.status not in gave_back), ours[0] if ours else None)

    def get_payment(self, *, connector_transaction_id: str) -> PaymentInfo:
        """The payment, named by its canonical id (the PaymentIntent where the charge has one)
        with the other id (the Charge) as an alias, whichever of the two was asked."""
        kind = _payment_param(connector_transaction_id)
        with _asking("a payment"):
            if kind == "payment_intent":
                intent = self._call(
                    "get", f"/v1/payment_intents/{_path_id(connector_transaction_id)}", expand=["latest_charge"]
                )
                charge = intent["latest_charge"]  # null until a charge is made; always there
                if isinstance(charge, str):
                    charge = self._call("get", f"/v1/charges/{_path_id(charge)}")
                sold = intent  # metadata, status and customer are the PaymentIntent's
            else:
                charge = sold = self._call("get", f"/v1/charges/{_path_id(connector_transaction_id)}")
            if charge is None:
                raise PermanentProviderError("The payment has no charge to refund.", code="payment_not_captured")
            metadata = dict(sold.get("metadata") or {})
            intent_id = _object_id(charge.get("payment_intent"))
            canonical = connector_transaction_id if kind == "payment_intent" else intent_id or connector_transaction_id
            return PaymentInfo(
                connector_transaction_id=canonical,
                aliases=tuple(sorted({connector_transaction_id, charge["id"]} - {canonical})),
                amount=Money(int(charge["amount"]), charge["currency"].upper()),
                amount_refunded=int(charge.get("amount_refunded") or 0),
                status=sold.get("status") or "",
                product=str(metadata.get("product", "")),
                metadata=metadata,
                customer=_object_id(sold.get("customer")),
                disputes_known=True,
                dispute=self._latest_dispute(charge),
            )

    def _call(self, method: str, path: str, **params) -> dict:
        """One call through the SDK's client (its authentication, headers, encoding and errors:
        StripeError as from its typed services), the answer kept as the JSON it parsed. Building
        StripeObjects of the answer, of which we read a few fields, was a measurable part of
        intake's CPU (bench/README.md, "The worker's step and Stripe's answers written out").
        `idempotency_key` among `params` is sent as the header."""
        return self._client.raw_request(method, path, **params).data

    def _latest_dispute(self, charge: Mapping) -> DisputeInfo | None:
        """The charge's newest dispute; asked only when the charge says it was disputed (one
        more call then, none for the undisputed)."""
        if not charge.get("disputed", False):
            return None
        page = self._call("get", "/v1/disputes", charge=charge["id"], limit=1)
        if not page.get("data"):
            return None
        return _dispute_info(page["data"][0])

    def list_payments(
        self,
        *,
        created_gte: datetime.datetime,
        created_lt: datetime.datetime,
        before_request: Callable[[], object] | None = None,
    ) -> Iterator[SoldPayment]:
        """Succeeded PaymentIntents created in [created_gte, created_lt), newest first. Pages
        by hand (not the SDK's auto_paging_iter) so each request passes `before_request`."""
        params: dict = {
            "created": {"gte": int(created_gte.timestamp()), "lt": int(created_lt.timestamp())},
            "limit": self.list_page_size,
        }
        while True:
            if before_request is not None:
                before_request()
            with _asking("a list of payments"):
                page = self._client.v1.payment_intents.list(params=params)
                sold = [_sold_payment(intent) for intent in page.data if intent.status == "succeeded"]
            yield from sold
            if not page.has_more or not page.data:
                return
            params = {**params, "starting_after": page.data[-1].id}


    # --- webhooks ------------------------------------------------------------------------

    def parse_webhook(self, *, payload: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Verify the Stripe-Signature header against STRIPE_WEBHOOK_SECRET, then check the event
        has the fields processing reads, in the types it reads them (a 400 tells Stripe to stop
        retrying: a 5xx would be retried for days)."""
        if not self._webhook_secret:
            raise WebhookRejected("STRIPE_WEBHOOK_SECRET is not set.", code="webhook_not_configured", http_status=503)
        try:
            stripe.WebhookSignature.verify_header(
                payload, headers.get("Stripe-Signature", ""), self._webhook_secret, tolerance=self._webhook_tolerance
            )
        except stripe.SignatureVerificationError:
            raise WebhookRejected(
                "The Stripe-Signature header does not verify.", code="invalid_signature"
            ) from None
        except UnicodeDecodeError:
            raise WebhookRejected("The body is not UTF-8 JSON.", code="invalid_payload") from None
        return self.webhook_event(event_from_body(payload))

    @classmethod
    def webhook_event(cls, payload: dict) -> ProviderEvent:
        event_type = str(payload.get("type", ""))
        return ProviderEvent(
            event_id=str(payload["id"]),
            type=event_type,
            payload=payload,
            is_refund_event=event_type in REFUND_EVENT_TYPES,
            is_dispute_event=event_type in DISPUTE_EVENT_TYPES,
            transaction_ids=event_transaction_ids(payload),
        )


def _dispute_info(dispute: Mapping) -> DisputeInfo:
    status = str(dispute.get("status") or "")
    created = dispute.get("created")
    return DisputeInfo(
        dispute_id=dispute["id"],
        state=_DISPUTE_STATE.get(status, DisputeState.OPEN),
        provider_status=status,
        amount=Money(int(dispute["amount"]), dispute["currency"].upper()),
        reason=str(dispute.get("reason") or ""),
        refundable=bool(dispute.get("is_charge_refundable", False)),
        opened_at=datetime.datetime.fromtimestamp(int(created), tz=datetime.UTC) if created else None,
    )


def _sold_payment(intent) -> SoldPayment:
    received = getattr(intent, "amount_received", None)
    return SoldPayment(
        connector_transaction_id=intent.id,
        amount=Money(int(intent.amount if received is None else received), intent.currency.upper()),
        created=datetime.datetime.fromtimestamp(int(intent.created), tz=datetime.UTC),
        status=intent.status,
        metadata=intent.metadata.to_dict() if intent.metadata else {},
    )


def _object_id(value) -> str:
    """An expandable field's id, whether Stripe sent the id or the object (or nothing)."""
    if isinstance(value, str):
        return value
    return (value.get("id") if isinstance(value, Mapping) else "") or ""


def _path_id(value: str) -> str:
    """An id as one path segment (the SDK's typed services quote it the same way)."""
    return urllib.parse.quote_plus(value)


def _payment_param(connector_transaction_id: str) -> str:
    if connector_transaction_id.startswith("pi_"):
        return "payment_intent"
    if connector_transaction_id.startswith("ch_") or connector_transaction_id.startswith("py_"):
        return "charge"
    raise TransactionNotFound(
        "A Stripe transaction id starts with pi_ (PaymentIntent) or ch_ (Charge).",
        code="invalid_transaction_id",
    )


def _refund_result(refund: Mapping) -> RefundResult:
    failure = refund.get("failure_reason") or ""
    metadata = refund.get("metadata") or {}
    status = refund["status"]
    return RefundResult(
        connector_refund_id=refund["id"],
        status=_STATUS.get(status, ProviderRefundStatus.PENDING),
        amount=Money(int(refund["amount"]), refund["currency"].upper()),
        failure_code=failure,
        failure_message=f"Stripe reported the refund {status}: {failure}" if failure else "",
        connector_transaction_id=_object_id(refund.get("payment_intent") or refund.get("charge")),
        merchant_refund_id=metadata.get("merchant_refund_id") or "",
    )
