"""Robokassa adapter: the JWT-signed Refund API v2 through the async `aiorobokassa` library.

Identifiers
    connector_transaction_id is the payment's OpKey, the operation key Robokassa hands the shop
    in its Result2 notification (and in OpStateExt). Accepted: 8-64 letters, digits and hyphens,
    starting with a letter or digit (Robokassa's OpKeys are GUID-shaped).
    connector_refund_id is the refund request's `requestId` (a GUID) from Refund/Create.

Amounts
    The library speaks rubles as Decimal; Refund Office speaks minor units. minor → Decimal is
    `scaleb` (exact); Decimal → minor is accepted only when it is a whole number of kopeks.
    aiorobokassa itself writes RefundSum and item costs into the JWT as JSON numbers through
    float(); a float's repr is the shortest decimal that reads back to it, so any amount with
    two decimals and at most 15 significant digits (ours stop at 10^12 kopeks) is sent exactly.

Statuses
    Refund/GetState labels: processing → pending, finished → succeeded, canceled → canceled.
    Anything else is reported pending and polled again (a person is asked after
    REFUND_POLL_GIVE_UP_SECONDS).

Async from sync code
    Every call builds a client, runs in its own event loop (asyncio.run; in a fresh thread when
    the caller already runs a loop), is bounded by ROBOKASSA_TIMEOUT_SECONDS as a whole and per
    HTTP request, and closes the client's session before the loop ends, so nothing outlives it.

Lookups beyond the public refund API
    Robokassa's Refund API v2 has two calls, Create and GetState. It cannot look a payment up by
    OpKey nor list a payment's refunds (OpStateExt looks up by InvoiceID and reports no refunded
    sum). `get_payment` and `list_refunds` call two lookups, POST {base}/RefundOfficeExt/Operation
    and /RefundOfficeExt/Refunds, signed like Refund/Create, that the local emulator
    (devtools/robokassa_sandbox) implements. Against Robokassa's own hosts they answer 404, which
    is a permanent `lookup_unavailable` error: intake refuses the refund with that message and a
    re-submit after a lost answer waits for a person (see below). A production deployment needs
    a service that answers them (e.g. backed by the shop's Result2 notifications).

Money never moves twice
    Robokassa refunds carry no idempotency key and no metadata, so a repeated Create is a second
    refund. What stands in for Stripe's idempotency key (`idempotent_create = False`):
    - the row lock and in-flight lease in services keep two workers from calling at once;
    - a first attempt calls Create directly; any later attempt (the previous call timed out, its
      answer was lost, or the worker died mid-call) first lists the payment's refunds and adopts
      one our records do not know, of the same amount and not canceled, instead of creating;
      if the list cannot be read the attempt fails transiently and never creates blindly;
    - Robokassa (and the emulator) refuse a refund beyond what remains of the payment, so a
      duplicate of a full refund is refused by the provider itself.
    Residual risk: (1) a refund made by hand in Robokassa's cabinet for the same amount, between
    a lost answer and the retry, is adopted as ours, so the customer gets one refund where two
    were meant (never two where one was meant); (2) if Robokassa's listing lagged behind
    Create, a retry could miss the first refund and create a second partial one; (3) against
    hosts without the lookup, a lost answer always needs a person to check the cabinet.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
from decimal import Decimal, InvalidOperation

import aiohttp
import pydantic
from aiorobokassa import APIError, ConfigurationError, RefundItem, RoboKassaClient, TaxRate
from aiorobokassa.constants import MIN_PASSWORD_LENGTH
from aiorobokassa.utils.jwt import create_jwt_token
from django.conf import settings

from refunds.money import CURRENCY_EXPONENTS, minor_to_decimal
from refunds.providers.base import (
    LineItem,
    Money,
    PaymentInfo,
    PermanentProviderError,
    ProviderError,
    ProviderRefundStatus,
    RefundResult,
    TransactionNotFound,
    TransientProviderError,
)
from refunds.redaction import redact

CURRENCY = "RUB"
TAX_RATES = tuple(rate.value for rate in TaxRate)

_STATUS = {
    "processing": ProviderRefundStatus.PENDING,
    "finished": ProviderRefundStatus.SUCCEEDED,
    "canceled": ProviderRefundStatus.CANCELED,
}

_OP_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{7,63}$")

# The hosts aiorobokassa calls (it has absolute URLs for the refund service); ROBOKASSA_API_BASE
# replaces them, so the same client talks to the emulator.
_ROBOKASSA_HOSTS = ("https://services.robokassa.ru", "https://auth.robokassa.ru")
_EXT_OPERATION = "https://services.robokassa.ru/RefundOfficeExt/Operation"
_EXT_REFUNDS = "https://services.robokassa.ru/RefundOfficeExt/Refunds"

_NOT_FOUND_WORDS = ("not found", "не найден", "unknown opkey", "unknown operation")
_AMOUNT_WORDS = ("exceed", "превыша", "already refunded", "insufficient", "недостаточно")


def to_rubles(money: Money) -> Decimal:
    if money.currency != CURRENCY:
        raise PermanentProviderError(
            f"Robokassa refunds are in {CURRENCY}; this asks for {money.currency}.", code="currency_mismatch", http_status=422
        )
    return minor_to_decimal(money.minor_amount, CURRENCY)


def to_minor(amount: Decimal | str | int | None, currency: str = CURRENCY) -> int:
    """Rubles (a Decimal, or the text of a JSON number) to kopeks, exactly or not at all."""
    if amount is None:
        return 0
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise PermanentProviderError(f"Robokassa sent an amount that is not a number: {amount!r}.", code="bad_amount")
    minor = value.scaleb(CURRENCY_EXPONENTS[currency])
    if minor != minor.to_integral_value():
        raise PermanentProviderError(f"Robokassa sent {value}, not a whole number of kopeks.", code="bad_amount")
    return int(minor)


class _Client(RoboKassaClient):
    """aiorobokassa's client, with its hosts replaced by `api_base` when one is set."""

    def __init__(self, *args, api_base: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self._api_base = api_base.rstrip("/")

    async def _request(self, method, url, **kwargs):
        if self._api_base:
            for host in _ROBOKASSA_HOSTS:
                if url.startswith(host):
                    url = self._api_base + url[len(host):]
                    break
        return await super()._request(method, url, **kwargs)

    async def ext_call(self, url: str, payload: dict) -> dict:
        """One of the lookups the refund API lacks, signed like Refund/Create."""
        token = create_jwt_token(
            payload={"MerchantLogin": self.merchant_login, **payload}, secret_key=self.password3, algorithm="HS256"
        )
        response = await self._post(url, json=token)
        async with response:
            result = json.loads(await response.text(), parse_float=Decimal)
        if not isinstance(result, dict) or not result.get("success", False):
            message = result.get("message") if isinstance(result, dict) else None
            raise APIError(f"Lookup failed: {message or 'no answer'}")
        return result


def _provider_message(error: APIError) -> str:
    """The provider's own words: from the JSON body of an HTTP error, else the library's."""
    body = getattr(error, "response", None)
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
        return body[:300]
    return str(error)


def translate_error(error: Exception) -> ProviderError:
    """Map what aiorobokassa raises to a transient or permanent provider error, keeping the
    provider's message."""
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        return TransientProviderError("Robokassa did not answer in time.", code="timeout")
    if isinstance(error, ConfigurationError):
        # Caught at start-up by the system check; if it slips through, a person fixes the
        # settings and retries: nothing was sent.
        return TransientProviderError(f"Robokassa is not configured: {error}", code="configuration_error")
    if isinstance(error, pydantic.ValidationError):
        return PermanentProviderError(
            redact(f"Robokassa refused the request's shape: {error.errors()[0].get('msg', error)}")[:500],
            code="invalid_request",
        )
    if isinstance(error, (aiohttp.ClientError, ValueError)):
        # A body that is not JSON, a dropped connection outside the library's own handling.
        return TransientProviderError(redact(f"Robokassa answered unreadably: {error}")[:500], code="bad_response")
    if not isinstance(error, APIError):
        return TransientProviderError(redact(f"Robokassa call failed: {error!r}")[:500], code="provider_error")
    status = error.status_code or 0
    message = redact(_provider_message(error))[:500]
    lowered = message.lower()
    if status == 429:
        return TransientProviderError(message, code="rate_limit")
    if status >= 500:
        return TransientProviderError(message, code=f"http_{status}")
    if status in (401, 403):
        return TransientProviderError(message, code="authentication_failed")
    if not status and (lowered.startswith("network error") or lowered.startswith("request timeout")):
        return TransientProviderError(message, code="network_error")
    if status == 404 and not any(word in lowered for word in _NOT_FOUND_WORDS):
        return PermanentProviderError(
            f"This Robokassa endpoint does not exist ({message[:200]}); see refunds/providers/robokassa.py.",
            code="lookup_unavailable",
        )
    if any(word in lowered for word in _NOT_FOUND_WORDS):
        return TransactionNotFound(message, code="operation_not_found")
    if any(word in lowered for word in _AMOUNT_WORDS):
        return PermanentProviderError(message, code="amount_too_large", http_status=422)
    return PermanentProviderError(message, code="refund_refused" if not status else f"http_{status}")


class RobokassaProvider:
    name = "robokassa"
    supports_items = True
    item_tax_rates = TAX_RATES
    idempotent_create = False
    transaction_id_pattern = r"^[A-Za-z0-9][A-Za-z0-9-]{7,63}$"

    def __init__(
        self,
        *,
        merchant_login: str,
        password1: str,
        password2: str,
        password3: str,
        api_base: str = "",
        timeout: float = 15.0,
    ):
        self._credentials = (merchant_login, password1, password2, password3)
        self._api_base = api_base
        self._timeout = timeout

    @classmethod
    def from_settings(cls) -> RobokassaProvider:
        return cls(
            merchant_login=settings.ROBOKASSA_MERCHANT_LOGIN,
            password1=settings.ROBOKASSA_PASSWORD1,
            password2=settings.ROBOKASSA_PASSWORD2,
            password3=settings.ROBOKASSA_PASSWORD3,
            api_base=settings.ROBOKASSA_API_BASE,
            timeout=settings.ROBOKASSA_TIMEOUT_SECONDS,
        )

    @classmethod
    def validate_transaction_id(cls, value: str) -> str | None:
        if _OP_KEY.match(value):
            return None
        return (
            "connector_transaction_id must be the payment's Robokassa OpKey: "
            "8-64 letters, digits and hyphens (e.g. a GUID)."
        )

    @classmethod
    def check_configuration(cls, settings) -> list[str]:
        problems = []
        if not settings.ROBOKASSA_MERCHANT_LOGIN.strip():
            problems.append("ROBOKASSA_MERCHANT_LOGIN is empty.")
        for number in (1, 2, 3):
            name = f"ROBOKASSA_PASSWORD{number}"
            value = getattr(settings, name, "")
            if not value:
                why = " Robokassa's refund API signs every request with password #3." if number == 3 else ""
                problems.append(f"{name} is not set.{why}")
            elif len(value) < MIN_PASSWORD_LENGTH:
                problems.append(f"{name} is shorter than {MIN_PASSWORD_LENGTH} characters.")
        if settings.ROBOKASSA_TIMEOUT_SECONDS <= 0:
            problems.append("ROBOKASSA_TIMEOUT_SECONDS must be positive.")
        return problems

    # --- calls -------------------------------------------------------------------------

    def _call(self, operation):
        """Run `operation(client)` to completion in a loop of its own; see the module docstring."""
        login, password1, password2, password3 = self._credentials

        async def run():
            client = _Client(
                login,
                password1,
                password2,
                password3=password3 or None,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                api_base=self._api_base,
            )
            try:
                async with asyncio.timeout(self._timeout):
                    return await operation(client)
            finally:
                await client.close()

        try:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(run())
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                return pool.submit(asyncio.run, run()).result()
        except Exception as error:  # noqa: BLE001 - every failure becomes a provider error
            raise translate_error(error) from error

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
    ) -> RefundResult:
        # Robokassa keeps neither our id, the reason, the metadata nor the key: they stay in
        # our records (see "Money never moves twice" above).
        refund_sum = to_rubles(amount) if amount is not None else None
        invoice_items = [self._item(item) for item in items or []]
        response = self._call(
            lambda client: client.create_refund_v2(
                op_key=connector_transaction_id, refund_sum=refund_sum, invoice_items=invoice_items or None
            )
        )
        if not response.request_id:
            raise TransientProviderError("Robokassa accepted the refund but sent no requestId.", code="no_request_id")
        if amount is None:
            try:
                return self.get_refund(
                    connector_refund_id=response.request_id, connector_transaction_id=connector_transaction_id
                )
            except ProviderError:
                amount = Money(0, CURRENCY)  # known at the next poll
        # Create answers only with an id: every refund starts out processing.
        return RefundResult(
            connector_refund_id=response.request_id,
            status=ProviderRefundStatus.PENDING,
            amount=amount,
            connector_transaction_id=connector_transaction_id,
        )

    def _item(self, item: LineItem) -> RefundItem:
        if item.tax not in TAX_RATES:
            raise PermanentProviderError(f"Unknown Robokassa tax rate {item.tax!r}.", code="invalid_tax")
        try:
            return RefundItem(name=item.name, quantity=item.quantity, cost=to_rubles(item.cost), tax=TaxRate(item.tax))
        except pydantic.ValidationError as error:
            raise translate_error(error) from error

    def get_refund(self, *, connector_refund_id: str, connector_transaction_id: str = "") -> RefundResult:
        state = self._call(lambda client: client.get_refund_status_v2(request_id=connector_refund_id))
        status = _STATUS.get((state.label or "").lower(), ProviderRefundStatus.PENDING)
        failure_code = failure_message = ""
        if status == ProviderRefundStatus.CANCELED:
            failure_code = "canceled"
            failure_message = redact(f"Robokassa canceled the refund: {state.message or 'no reason given'}")[:500]
        return RefundResult(
            connector_refund_id=state.request_id or connector_refund_id,
            status=status,
            amount=Money(to_minor(state.amount), CURRENCY),
            failure_code=failure_code,
            failure_message=failure_message,
            connector_transaction_id=connector_transaction_id,
        )

    def list_refunds(self, *, connector_transaction_id: str) -> list[RefundResult]:
        answer = self._call(lambda client: client.ext_call(_EXT_REFUNDS, {"OpKey": connector_transaction_id}))
        results = []
        for refund in answer.get("refunds") or []:
            status = _STATUS.get(str(refund.get("label", "")).lower(), ProviderRefundStatus.PENDING)
            results.append(
                RefundResult(
                    connector_refund_id=str(refund["requestId"]),
                    status=status,
                    amount=Money(to_minor(refund.get("amount")), CURRENCY),
                    failure_code="canceled" if status == ProviderRefundStatus.CANCELED else "",
                    connector_transaction_id=connector_transaction_id,
                )
            )
        return results

    def get_payment(self, *, connector_transaction_id: str) -> PaymentInfo:
        answer = self._call(lambda client: client.ext_call(_EXT_OPERATION, {"OpKey": connector_transaction_id}))
        currency = str(answer.get("currency") or CURRENCY).upper()
        if currency not in CURRENCY_EXPONENTS:
            raise PermanentProviderError(f"Robokassa reports the payment in {currency!r}.", code="currency_unknown")
        product = str(answer.get("description") or "")
        return PaymentInfo(
            connector_transaction_id=connector_transaction_id,
            amount=Money(to_minor(answer.get("outSum"), currency), currency),
            amount_refunded=to_minor(answer.get("refundedSum"), currency),
            status=str(answer.get("state") or ""),
            product=product,
            metadata={"invoice_id": str(answer.get("invoiceId", ""))},
        )
