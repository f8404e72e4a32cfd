"""Robokassa on the wire: amounts in rubles, OpStateExt (its signature and XML), the
aiorobokassa client pointed at ROBOKASSA_API_BASE, and its errors as provider errors. The
adapter (refunds/providers/robokassa.py) explains what Robokassa offers and how it is used."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree

import aiohttp
import pydantic
from aiorobokassa import APIError, ConfigurationError, RoboKassaClient
from aiorobokassa.constants import XML_SERVICE_ENDPOINT

from refunds.money import decimal_to_minor, minor_to_decimal
from refunds.providers.base import (
    Money,
    PermanentProviderError,
    ProviderError,
    TransactionNotFound,
    TransientProviderError,
)
from refunds.redaction import redact

CURRENCY = "RUB"

# The hosts aiorobokassa calls (it has absolute URLs for the refund service); ROBOKASSA_API_BASE
# replaces them, so the same client talks to the emulator.
_ROBOKASSA_HOSTS = ("https://services.robokassa.ru", "https://auth.robokassa.ru")

_NOT_FOUND_WORDS = ("not found", "не найден", "unknown opkey", "unknown operation")
_AMOUNT_WORDS = ("exceed", "превыша", "already refunded", "insufficient", "недостаточно")


def to_rubles(money: Money) -> Decimal:
    if money.currency != CURRENCY:
        raise PermanentProviderError(
            f"Robokassa refunds are in {CURRENCY}; this asks for {money.currency}.", code="currency_mismatch", http_status=422
        )
    return minor_to_decimal(money.minor_amount, CURRENCY)


def to_minor(amount: Decimal | str | int | None, currency: str = CURRENCY) -> int:
    """Rubles (a Decimal, or the text of a number) to kopeks, exactly or not at all."""
    if amount is None:
        return 0
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise PermanentProviderError(f"Robokassa sent an amount that is not a number: {amount!r}.", code="bad_amount")
    if not value.is_finite():
        raise PermanentProviderError(f"Robokassa sent an amount that is not a number: {amount!r}.", code="bad_amount")
    try:
        return decimal_to_minor(value, currency)
    except ValueError:
        raise PermanentProviderError(f"Robokassa sent {value}, not a whole number of kopeks.", code="bad_amount") from None


def op_state_signature(login: str, invoice_id: str, password2: str, algorithm: str) -> str:
    """OpStateExt's Signature: hash("MerchantLogin:InvoiceID:password #2"), hex."""
    return hashlib.new(algorithm.lower(), f"{login}:{invoice_id}:{password2}".encode()).hexdigest()


@dataclass(frozen=True)
class OperationState:
    """What OpStateExt says about one invoice."""

    invoice_id: str
    state: int
    out_sum: int  # kopeks
    op_key: str
    # The shop's own Shp_ parameters of the payment (UserField), names lowercased.
    user_fields: dict


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element, name: str):
    if element is None:
        return None
    return next((child for child in element if _local(child.tag) == name), None)


def _text(element, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""


def parse_op_state(invoice_id: str, body: str) -> OperationState:
    """OpStateExt's XML to an OperationState, or the error its Result/Code stands for."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise TransientProviderError(
            redact(f"Robokassa's OpStateExt answered something that is not XML: {body[:200]!r}"), code="bad_response"
        ) from None
    result = _child(root, "Result")
    code, description = _text(result, "Code"), _text(result, "Description")
    said = f" ({description})" if description else ""
    if code == "3":
        raise TransactionNotFound(f"Robokassa knows no operation with InvoiceID {invoice_id}{said}.", code="operation_not_found")
    if code in ("1", "2"):
        # The signature or the shop login is wrong: settings to fix; nothing was sent.
        raise TransientProviderError(
            f"Robokassa refused OpStateExt's signature or shop login (code {code}){said}; "
            "check ROBOKASSA_MERCHANT_LOGIN, ROBOKASSA_PASSWORD2 and ROBOKASSA_SIGNATURE_ALGORITHM.",
            code="authentication_failed",
        )
    if code == "4":
        raise PermanentProviderError(
            f"Robokassa has two operations with InvoiceID {invoice_id}{said}; refund it in the cabinet.",
            code="ambiguous_invoice",
        )
    if code != "0":
        raise TransientProviderError(f"Robokassa's OpStateExt failed (code {code or '?'}){said}.", code="provider_error")
    info = _child(root, "Info")
    try:
        state = int(_text(_child(root, "State"), "Code"))
    except ValueError:
        raise TransientProviderError("Robokassa's OpStateExt answered no state.", code="bad_response") from None
    return OperationState(
        invoice_id=invoice_id,
        state=state,
        out_sum=to_minor(_text(info, "OutSum") or "0"),
        op_key=_text(info, "OpKey"),
        user_fields={
            _text(field, "Name").lower(): _text(field, "Value")
            for field in (_child(root, "UserField") or [])
            if _local(field.tag) == "Field" and _text(field, "Name")
        },
    )


class ApiClient(RoboKassaClient):
    """aiorobokassa's client, with its hosts replaced by `api_base` when one is set, and the
    one XML call it lacks."""

    def __init__(self, *args, api_base: str = "", signature_algorithm: str = "MD5", **kwargs):
        super().__init__(*args, **kwargs)
        self._api_base = api_base.rstrip("/")
        self._signature_algorithm = signature_algorithm

    async def _request(self, method, url, **kwargs):
        if self._api_base:
            for host in _ROBOKASSA_HOSTS:
                if url.startswith(host):
                    url = self._api_base + url[len(host):]
                    break
        return await super()._request(method, url, **kwargs)

    async def op_state(self, invoice_id: str) -> OperationState:
        signature = op_state_signature(self.merchant_login, invoice_id, self.password2, self._signature_algorithm)
        response = await self._get(
            f"{self.base_url}{XML_SERVICE_ENDPOINT}/OpStateExt",
            params={"MerchantLogin": self.merchant_login, "InvoiceID": invoice_id, "Signature": signature},
        )
        async with response:
            body = await response.text()
        return parse_op_state(invoice_id, body)


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
    if any(word in lowered for word in _NOT_FOUND_WORDS):
        return TransactionNotFound(message, code="operation_not_found")
    if any(word in lowered for word in _AMOUNT_WORDS):
        return PermanentProviderError(message, code="amount_too_large", http_status=422)
    return PermanentProviderError(message, code="refund_refused" if not status else f"http_{status}")
