"""Hyperswitch Prism adapter: one class that reaches every connector Prism can refund with.

Each enabled Prism connector is a provider of ours named `prism_<connector>`
(REFUND_PROVIDERS=stripe,robokassa,prism_adyen). Its configuration is Prism's own config
message for that connector, filled from PRISM_<CONNECTOR>_<FIELD> (settings.PRISM_CONNECTORS):
PRISM_STRIPE_API_KEY, PRISM_STRIPE_BASE_URL; PRISM_ADYEN_API_KEY, PRISM_ADYEN_MERCHANT_ACCOUNT...
`check_configuration` builds a refund request offline with it, so a missing credential is
named at start-up, not mid-refund.

What Prism 0.6.0 gives (seen against the Stripe sandbox) and what the adapter does about it
    - refund (PaymentService.Refund) needs `refund_amount` even for a whole refund: with no
      amount the adapter asks for the payment first and refunds all of it.
    - statuses REFUND_PENDING/SUCCESS/FAILURE/MANUAL_REVIEW/TRANSACTION_FAILURE map below; an
      unspecified status with an error is the connector's failure (Stripe `failed`).
    - errors: ConnectorError carries the connector's HTTP status (404: not found; 422 or an
      amount code: the amount is wrong; 429/5xx: transient), NetworkError is transient.
    - Prism's Stripe connector maps neither a refund's amount nor a payment's currency into its
      response: the adapter reads just `amount` and `currency` from Prism's typed connector
      response when Prism's own fields are empty. The raw response is never logged or kept.
    - no idempotency key reaches the connector (Stripe: no Idempotency-Key header):
      `idempotent_create = False`. Prism cannot list a payment's refunds, so by default
      `lists_refunds = False` and an unknown outcome waits for a person (as with Robokassa).
      For Stripe the adapter lists them itself with the same key and base URL (Stripe's
      GET /v1/refunds?payment_intent=…; Prism puts our merchant_refund_id in the refund's
      metadata as `order_id`), so the services look before resending and get_payment reports
      the refunded sum.
"""

from __future__ import annotations

import functools
import json
import re
from typing import ClassVar

import stripe
from django.conf import settings

from refunds.providers import prism_runtime
from refunds.providers.base import (
    LineItem,
    Money,
    PaymentInfo,
    PermanentProviderError,
    ProviderRefundStatus,
    RefundProvider,
    RefundResult,
    TransactionNotFound,
    TransientProviderError,
)
from refunds.providers.stripe import translate_error as translate_stripe_error
from refunds.redaction import redact

try:
    import payments
    from payments.connector_client import check_req
    from payments.generated import connector_service_ffi
except ImportError as error:  # the SDK is optional: only an enabled prism_* provider needs it
    payments = None
    SDK_IMPORT_ERROR = str(error)
else:
    SDK_IMPORT_ERROR = ""

PREFIX = "prism_"

_STATUS = {
    "REFUND_PENDING": ProviderRefundStatus.PENDING,
    "REFUND_SUCCESS": ProviderRefundStatus.SUCCEEDED,
    "REFUND_FAILURE": ProviderRefundStatus.FAILED,
    "REFUND_TRANSACTION_FAILURE": ProviderRefundStatus.FAILED,
    "REFUND_MANUAL_REVIEW": ProviderRefundStatus.REQUIRES_ACTION,
}
# Connector codes that mean "the amount is wrong for this payment" (Prism's 422).
_AMOUNT_CODES = frozenset({"amount_too_large", "amount_too_small", "charge_already_refunded"})
# NetworkError codes raised before the request left: nothing can have been refunded.
_NOT_SENT = frozenset({"CONNECT_TIMEOUT_EXCEEDED", "URL_PARSING_FAILED", "CLIENT_INITIALIZATION_FAILURE",
                       "INVALID_PROXY_CONFIGURATION", "INVALID_CA_CERT"})
# Transaction ids by connector, where we know their shape; others: a printable token.
_TRANSACTION_IDS = {"stripe": (r"^(pi|ch|py)_[A-Za-z0-9]+$", "a Stripe PaymentIntent (pi_…) or Charge (ch_…) id")}
_ANY_ID = (r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$", "the connector's transaction id (letters, digits, _ . : -)")


def connectors() -> list[str]:
    """The connectors Prism has a config for (its ConnectorSpecificConfig's fields)."""
    return sorted(payments.ConnectorSpecificConfig.DESCRIPTOR.fields_by_name) if payments else []


def config_fields(connector: str) -> dict[str, bool]:
    """The connector's config fields: {name: is a secret}."""
    fields = payments.ConnectorSpecificConfig.DESCRIPTOR.fields_by_name[connector].message_type.fields
    return {field.name: bool(field.message_type and field.message_type.name == "SecretString") for field in fields}


@functools.cache
def provider_class(connector: str) -> type[PrismProvider]:
    """The adapter for one connector: PrismProvider with the connector's name and id shape."""
    pattern, words = _TRANSACTION_IDS.get(connector, _ANY_ID)
    return type(
        f"Prism{connector.title()}Provider",
        (PrismProvider,),
        {"name": f"{PREFIX}{connector}", "connector": connector, "transaction_id_pattern": pattern,
         "_transaction_id": re.compile(pattern), "_transaction_id_words": words,
         "lists_refunds": connector in _LISTERS},
    )


def _env_name(connector: str, field: str) -> str:
    return f"PRISM_{connector.upper()}_{field.upper()}"


_TRUE = frozenset({"1", "true", "yes", "on"})


def _field_value(connector: str, field: str, value: str):
    """An environment string as the config field's type: a secret, a flag, a number or text."""
    descriptor = payments.ConnectorSpecificConfig.DESCRIPTOR.fields_by_name[connector].message_type.fields_by_name[field]
    if descriptor.message_type is not None and descriptor.message_type.name == "SecretString":
        return payments.SecretString(value=value)
    if descriptor.type == descriptor.TYPE_BOOL:
        return value.strip().lower() in _TRUE
    if descriptor.cpp_type in (descriptor.CPPTYPE_INT32, descriptor.CPPTYPE_INT64, descriptor.CPPTYPE_UINT32,
                               descriptor.CPPTYPE_UINT64):
        return int(value)
    if field == "base_url" and value and not value.endswith("/"):
        value += "/"  # Prism appends paths to it as they are
    return value


def _connector_config(connector: str, values: dict[str, str]):
    kwargs = {field: _field_value(connector, field, value) for field, value in values.items()}
    config_class = getattr(payments, payments.ConnectorSpecificConfig.DESCRIPTOR.fields_by_name[connector].message_type.name)
    return payments.ConnectorSpecificConfig(**{connector: config_class(**kwargs)})


def _sdk_options(environment: str):
    return payments.SdkOptions(environment=payments.Environment.Value(environment))


class PrismProvider(RefundProvider):
    name: ClassVar[str] = PREFIX
    connector: ClassVar[str] = ""
    idempotent_create = False
    lists_refunds = False
    transaction_id_pattern: ClassVar[str] = _ANY_ID[0]
    _transaction_id: ClassVar[re.Pattern] = re.compile(_ANY_ID[0])
    _transaction_id_words: ClassVar[str] = _ANY_ID[1]

    def __init__(self, *, values: dict[str, str], environment: str, timeout: float):
        self._values = dict(values)
        self._environment = environment
        self._timeout = timeout
        self._config = payments.ConnectorConfig(
            connector_config=_connector_config(self.connector, self._values), options=_sdk_options(environment)
        )
        # Prism's HTTP timeouts, under our own asyncio.wait_for.
        timeout_ms = max(int(timeout * 1000), 1)
        self._defaults = payments.RequestConfig(
            http=payments.HttpConfig(total_timeout_ms=timeout_ms, connect_timeout_ms=timeout_ms, response_timeout_ms=timeout_ms)
        )
        self._key = (self.connector, environment, timeout, tuple(sorted(self._values.items())))

    @classmethod
    def from_settings(cls) -> PrismProvider:
        return cls(
            values=settings.PRISM_CONNECTORS.get(cls.connector, {}),
            environment=settings.PRISM_ENVIRONMENT,
            timeout=settings.PRISM_TIMEOUT_SECONDS,
        )

    @classmethod
    def validate_transaction_id(cls, value: str) -> str | None:
        if cls._transaction_id.match(value):
            return None
        return f"connector_transaction_id must be {cls._transaction_id_words}."

    @classmethod
    def check_configuration(cls, settings) -> list[str]:
        if payments is None:
            return [f"the hyperswitch-prism SDK is not installed ({SDK_IMPORT_ERROR}); see the README's Prism section."]
        if cls.connector not in connectors():
            return [f"Prism has no connector {cls.connector!r} (it has: {', '.join(connectors())})."]
        values = settings.PRISM_CONNECTORS.get(cls.connector, {})
        fields = config_fields(cls.connector)
        names = ", ".join(_env_name(cls.connector, field) for field in fields)
        unknown = [_env_name(cls.connector, key) for key in values if key not in fields]
        if unknown:
            return [f"{', '.join(unknown)} is not a setting of Prism's {cls.connector} connector (it takes {names})."]
        problems = []
        if settings.PRISM_ENVIRONMENT not in ("SANDBOX", "PRODUCTION"):
            problems.append("PRISM_ENVIRONMENT must be SANDBOX or PRODUCTION.")
        if settings.PRISM_TIMEOUT_SECONDS <= 0:
            problems.append("PRISM_TIMEOUT_SECONDS must be positive.")
        if not any(values.get(field) for field, secret in fields.items() if secret):
            problems.append(f"no credentials: set {names} as Prism's {cls.connector} connector needs.")
        elif not problems:
            try:
                problems += cls._offline_problems(values, settings.PRISM_ENVIRONMENT, names)
            except (TypeError, ValueError) as error:  # a value the field's type cannot hold
                problems.append(f"a PRISM_{cls.connector.upper()}_* value does not fit Prism's config: {error}")
        return problems

    @classmethod
    def _offline_problems(cls, values: dict[str, str], environment: str, names: str) -> list[str]:
        """Build a refund request without sending it: Prism names what the config lacks."""
        options = payments.FfiOptions(environment=payments.Environment.Value(environment),
                                      connector_config=_connector_config(cls.connector, values))
        request = payments.PaymentServiceRefundRequest(
            merchant_refund_id="check", connector_transaction_id="check", payment_amount=100,
            refund_amount=payments.Money(minor_amount=100, currency=payments.USD),
        )
        try:
            check_req(connector_service_ffi.refund_req_transformer(request.SerializeToString(), options.SerializeToString()))
        except (payments.IntegrationError, payments.ConnectorError) as error:
            return [f"Prism cannot build a {cls.connector} refund with this configuration: {error} ({names})."]
        return []

    # --- calls -------------------------------------------------------------------------

    def _call(self, client_class_name: str, method: str, request):
        """One SDK call, in this thread's loop, bounded, errors translated."""
        def make_client():
            return getattr(payments, client_class_name)(self._config, defaults=self._defaults)

        async def operation(client):
            return await getattr(client, method)(request)

        try:
            return prism_runtime.run((client_class_name, self._key), make_client, operation, timeout=self._timeout)
        except Exception as error:  # noqa: BLE001 - every failure becomes a provider error
            raise translate_error(error) from None

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
        # Prism takes no idempotency key and (for Stripe) drops reason and metadata: they stay
        # in our records.
        if items:
            raise PermanentProviderError(f"{self.name} refunds have no invoice items.", code="items_not_supported")
        payment_amount = None
        if amount is None:
            try:
                payment = self.get_payment(connector_transaction_id=connector_transaction_id)
            except TransientProviderError as error:
                raise TransientProviderError(error.message, code=error.code, refund_not_sent=True) from None
            amount = payment_amount = payment.amount
        request = payments.PaymentServiceRefundRequest(
            merchant_refund_id=merchant_refund_id,
            connector_transaction_id=connector_transaction_id,
            payment_amount=(payment_amount or amount).minor_amount,
            refund_amount=_money(amount),
            reason=reason[:255],
        )
        response = self._call("PaymentClient", "refund", request)
        return self._result(response, connector_transaction_id, fallback=amount, merchant_refund_id=merchant_refund_id)

    def get_refund(self, *, connector_refund_id: str, connector_transaction_id: str = "") -> RefundResult:
        request = payments.RefundServiceGetRequest(
            connector_transaction_id=connector_transaction_id, connector_refund_id=connector_refund_id
        )
        try:
            response = self._call("RefundClient", "refund_get", request)
        except TransientProviderError as error:
            # Prism cannot read some final states (Stripe's `canceled`); the lister can.
            if error.code != "response_deserialization_failed" or not self.lists_refunds or not connector_transaction_id:
                raise
            listed = self.list_refunds(connector_transaction_id=connector_transaction_id)
            found = [result for result in listed if result.connector_refund_id == connector_refund_id]
            if not found:
                raise
            return found[0]
        return self._result(response, connector_transaction_id, fallback=None, connector_refund_id=connector_refund_id)

    def get_payment(self, *, connector_transaction_id: str) -> PaymentInfo:
        # Prism requires an amount on a payment look-up; it only echoes its currency back.
        request = payments.PaymentServiceGetRequest(
            connector_transaction_id=connector_transaction_id, amount=payments.Money(minor_amount=0, currency=payments.USD)
        )
        response = self._call("PaymentClient", "get", request)
        typed = _typed_money(response)
        captured = response.captured_amount or response.amount.minor_amount
        amount = typed or Money(captured, payments.Currency.Name(response.amount.currency))
        refunded = 0
        if self.lists_refunds:
            listed = self.list_refunds(connector_transaction_id=connector_transaction_id)
            refunded = sum(r.amount.minor_amount for r in listed if r.status not in _NOT_REFUNDED)
        return PaymentInfo(
            connector_transaction_id=connector_transaction_id,
            amount=Money(captured or amount.minor_amount, amount.currency),
            # Without a lister Prism reports no refunded sum: our own refunds count on top.
            amount_refunded=refunded,
            status=payments.PaymentStatus.Name(response.status).lower(),
        )

    def list_refunds(self, *, connector_transaction_id: str) -> list[RefundResult]:
        lister = _LISTERS.get(self.connector)
        if lister is None:
            return super().list_refunds(connector_transaction_id=connector_transaction_id)
        return lister(self._values, self._timeout, connector_transaction_id)

    def _result(self, response, connector_transaction_id, *, fallback, merchant_refund_id="", connector_refund_id=""):
        status_name = payments.RefundStatus.Name(response.status)
        status = _STATUS.get(status_name)
        failure_code = failure_message = ""
        details = response.error.connector_details if response.HasField("error") else None
        if status is None:
            status = ProviderRefundStatus.FAILED if details and (details.code or details.message) else ProviderRefundStatus.PENDING
        if status == ProviderRefundStatus.FAILED:
            code = details.code if details and details.code and details.code != "No error code" else ""
            failure_code = (code or (details.reason if details else "") or status_name.lower())[:64]
            why = (details.message or details.reason) if details else ""
            failure_message = redact(f"{self.connector} reported the refund failed: {why or status_name}")[:500]
        amount = None
        if response.HasField("refund_amount") and response.refund_amount.minor_amount:
            amount = Money(response.refund_amount.minor_amount, payments.Currency.Name(response.refund_amount.currency))
        amount = amount or _typed_money(response) or fallback or Money(0, "USD")
        return RefundResult(
            connector_refund_id=response.connector_refund_id or connector_refund_id,
            status=status,
            amount=amount,
            failure_code=failure_code,
            failure_message=failure_message,
            connector_transaction_id=response.connector_transaction_id or connector_transaction_id,
            merchant_refund_id=response.merchant_refund_id or merchant_refund_id,
        )


_NOT_REFUNDED = frozenset({ProviderRefundStatus.FAILED, ProviderRefundStatus.CANCELED})
_STRIPE_STATUS = {
    "pending": ProviderRefundStatus.PENDING,
    "requires_action": ProviderRefundStatus.REQUIRES_ACTION,
    "succeeded": ProviderRefundStatus.SUCCEEDED,
    "failed": ProviderRefundStatus.FAILED,
    "canceled": ProviderRefundStatus.CANCELED,
}


def _stripe_refunds(values: dict[str, str], timeout: float, connector_transaction_id: str) -> list[RefundResult]:
    """A payment's refunds, asked of Stripe itself (Prism has no such call)."""
    base = (values.get("base_url") or "https://api.stripe.com").rstrip("/")
    client = stripe.StripeClient(
        values.get("api_key", ""), base_addresses={"api": base}, max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout),
    )
    kind = "payment_intent" if connector_transaction_id.startswith("pi_") else "charge"
    try:
        page = client.v1.refunds.list(params={kind: connector_transaction_id, "limit": 100})
        refunds = list(page.auto_paging_iter())
    except stripe.StripeError as error:
        raise translate_stripe_error(error) from None
    results = []
    for refund in refunds:
        metadata = refund.metadata.to_dict() if getattr(refund, "metadata", None) else {}
        failure = getattr(refund, "failure_reason", None) or ""
        results.append(RefundResult(
            connector_refund_id=refund.id,
            status=_STRIPE_STATUS.get(refund.status, ProviderRefundStatus.PENDING),
            amount=Money(int(refund.amount), refund.currency.upper()),
            failure_code=failure,
            failure_message=f"Stripe reported the refund {refund.status}: {failure}" if failure else "",
            connector_transaction_id=connector_transaction_id,
            # Prism sends our id as metadata[order_id]; a refund made elsewhere has none.
            merchant_refund_id=str(metadata.get("order_id") or metadata.get("merchant_refund_id") or ""),
        ))
    return results


# Connectors whose refunds the adapter can list although Prism cannot.
_LISTERS = {"stripe": _stripe_refunds}


def _money(amount: Money):
    try:
        currency = payments.Currency.Value(amount.currency)
    except ValueError:
        raise PermanentProviderError(f"Prism does not know the currency {amount.currency}.", code="invalid_currency") from None
    return payments.Money(minor_amount=amount.minor_amount, currency=currency)


def _typed_money(response) -> Money | None:
    """`amount` and `currency` from Prism's typed connector response, when it has both at the
    top level (Stripe's refund and PaymentIntent do). Nothing else of it is read or kept."""
    if not response.HasField("typed_connector_response"):
        return None
    try:
        data = json.loads(response.typed_connector_response.value)
    except ValueError:
        return None
    amount, currency = (data.get("amount"), data.get("currency")) if isinstance(data, dict) else (None, None)
    if isinstance(amount, int) and not isinstance(amount, bool) and isinstance(currency, str) and len(currency) == 3:
        return Money(amount, currency.upper())
    return None


def translate_error(error: Exception) -> Exception:
    """Prism's exceptions (and our timeout) as transient or permanent provider errors. Only
    Prism's message and codes are kept: never its raw connector request or response."""
    if isinstance(error, TimeoutError):  # asyncio.wait_for's, on Python >= 3.11
        return TransientProviderError("Prism did not answer in time.", code="timeout")
    if payments is not None and isinstance(error, payments.NetworkError):
        code = error.error_code
        return TransientProviderError(redact(str(error))[:500] or code, code=code.lower(), refund_not_sent=code in _NOT_SENT)
    if payments is not None and isinstance(error, payments.IntegrationError):
        # Raised while building the request: nothing was sent.
        return PermanentProviderError(redact(error.error_message)[:500], code=(error.error_code or "integration_error").lower())
    if payments is None or not isinstance(error, payments.ConnectorError):
        return TransientProviderError(f"Prism call failed: {error.__class__.__name__}", code="prism_error")
    return _connector_error(error)


def _connector_error(error) -> Exception:
    status = error.http_status_code or 0
    details = error.error_info.connector_details if error.HasField("error_info") else None
    code = (details.code if details else "") or error.error_code.lower() or "connector_error"
    message = redact(error.error_message or code)[:500]
    if status == 429 or status >= 500 or status in (401, 403, 409) or not 400 <= status < 500:
        # Also a response Prism could not read (Stripe's `canceled` refund): ask again later,
        # then a person looks.
        return TransientProviderError(message, code=code)
    if status == 404 or code == "resource_missing":
        return TransactionNotFound(message, code=code)
    if status == 422 or code in _AMOUNT_CODES:
        return PermanentProviderError(message, code=code, http_status=422)
    return PermanentProviderError(message, code=code, http_status=402)
