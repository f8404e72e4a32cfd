"""Robokassa adapter: aiorobokassa's JWT Refund API for refunds, Robokassa's XML interface
OpStateExt for the payment.

What real Robokassa offers (and what it does not)
    - Refund/Create (JWT, HS256 over password #3; aiorobokassa `create_refund_v2`) takes the
      payment's OpKey, an optional RefundSum and InvoiceItems, and answers with a requestId.
    - Refund/GetState?id=requestId (aiorobokassa `get_refund_status_v2`) answers the refund's
      amount and label: processing → pending, finished → succeeded, canceled → canceled.
      Anything else is reported pending and polled again (a person is asked after
      REFUND_POLL_GIVE_UP_SECONDS).
    - OpStateExt (GET auth.robokassa.ru/Merchant/WebService/Service.asmx/OpStateExt with
      MerchantLogin, InvoiceID, Signature = hash("MerchantLogin:InvoiceID:password #2"), the
      hash the shop chose in its technical settings: ROBOKASSA_SIGNATURE_ALGORITHM) answers XML:
      Result/Code (0 ok, 1 bad signature, 2 unknown shop, 3 no such invoice, 4 two operations,
      1000 internal error), State/Code (5 initiated, 10 canceled, 50 money held, 60 returned
      to the buyer, 80 suspended, 100 paid), Info with OutSum and the OpKey, and UserField
      with the payment's Shp_ parameters (Shp_product becomes the refund's product).
      aiorobokassa has no call for it (its `_xml_request` signs with password #1 and sorts the
      signed values by name, which is not OpStateExt's order), so the adapter makes the request
      itself through the client's session, bounded like every other call.
    Nothing in Robokassa's public API looks a payment up by OpKey, lists a payment's refunds
    or reports a payment's refunded sum (short of State 60, "returned to the buyer").

Identifiers
    connector_transaction_id is the payment's InvoiceID (the shop's InvId, 1..2147483647): what
    the shop itself numbered and what OpStateExt looks up. The OpKey Create needs is read from
    OpStateExt just before each Create, so it never has to be stored.
    connector_refund_id is the refund request's `requestId` (a GUID).

Amounts
    The library speaks rubles as Decimal; Refund Office speaks minor units. minor → Decimal is
    `scaleb` (exact); Decimal → minor is accepted only when it is a whole number of kopeks.
    aiorobokassa writes RefundSum and item costs into the JWT as JSON numbers through float();
    a float's repr is the shortest decimal that reads back to it, so any amount with two
    decimals and at most 15 significant digits (ours stop at 10^12 kopeks) is sent exactly.
    OutSum from OpStateExt is parsed as text ("1500.000000" → 150000 kopeks), never as a float.

What is refundable (lists_refunds = False)
    `get_payment` reports the amount refunded only when Robokassa says the whole payment went
    back (State 60); otherwise 0. The services count our own refunds on the payment on top
    (payment_refundable_remaining), and Robokassa itself refuses a refund beyond what remains,
    so a refund made by hand in Robokassa's cabinet is the one thing intake cannot see: it is
    refused by Robokassa at execution (a permanent failure with Robokassa's message).
    `list_refunds` raises PermanentProviderError("lookup_unavailable").

Money never moves twice
    Robokassa refunds carry no idempotency key (`idempotent_create = False`), so a repeated
    Create is a second refund. The row lock and in-flight lease in services keep two workers
    from calling at once. A call that failed before Create was sent (OpStateExt could not be
    read, the request was refused before it reached Robokassa) says so
    (`refund_not_sent = True` on the error) and is simply tried again. After a call whose
    outcome is unknown (Create timed out, its answer was lost, the worker died mid-call) the
    services would look for the refund it may have made; Robokassa cannot list refunds, so the
    refund waits for a person (needs_attention, "unknown_outcome") who checks the cabinet. Their
    Retry is their word that the cabinet shows no such refund: it is sent once more.

Async from sync code
    Every call builds a client, runs in its own event loop (asyncio.run; in a fresh thread when
    the caller already runs a loop), is bounded by ROBOKASSA_TIMEOUT_SECONDS as a whole and per
    HTTP request, and closes the client's session before the loop ends, so nothing outlives it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re

import aiohttp
import pydantic
from aiorobokassa import RefundItem, TaxRate
from aiorobokassa.constants import MIN_PASSWORD_LENGTH
from django.conf import settings

from refunds.providers.base import (
    LineItem,
    Money,
    PaymentInfo,
    PermanentProviderError,
    ProviderError,
    ProviderRefundStatus,
    RefundProvider,
    RefundResult,
    TransientProviderError,
)
from refunds.providers.robokassa_api import CURRENCY, ApiClient, OperationState, to_minor, to_rubles, translate_error
from refunds.redaction import redact

TAX_RATES = tuple(rate.value for rate in TaxRate)
# The hashes a shop may choose for its signatures (Robokassa also offers RIPEMD160, which
# OpenSSL 3 builds of hashlib lack).
SIGNATURE_ALGORITHMS = ("MD5", "SHA1", "SHA256", "SHA384", "SHA512")

_STATUS = {
    "processing": ProviderRefundStatus.PENDING,
    "finished": ProviderRefundStatus.SUCCEEDED,
    "canceled": ProviderRefundStatus.CANCELED,
}

# OpStateExt State/Code → our payment status; None: nothing was paid, nothing to refund.
_PAYMENT_STATES = {
    5: None,  # initiated, no money received
    10: None,  # canceled, no money received
    50: "held",  # money received, not yet credited to the shop
    60: "refunded",  # returned to the buyer
    80: "suspended",
    100: "paid",
}
_STATE_WORDS = {5: "only initiated, never paid", 10: "canceled without payment"}

# InvoiceID is a 32-bit positive integer: 1..2147483647, spelled out digit by digit so the
# same pattern serves the OpenAPI schema (JSON Schema has no numeric bound on a string).
INVOICE_ID_PATTERN = (
    r"^(?:[1-9][0-9]{0,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}"
    r"|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])$"
)
_INVOICE_ID = re.compile(INVOICE_ID_PATTERN)


class RobokassaProvider(RefundProvider):
    name = "robokassa"
    supports_items = True
    item_tax_rates = TAX_RATES
    # Robokassa refunds carry no idempotency key, cannot list a payment's refunds nor report
    # its refunded sum, and list no payments (see above): the protocol's defaults say so.
    idempotent_create = False
    lists_refunds = False
    transaction_id_pattern = INVOICE_ID_PATTERN

    def __init__(
        self,
        *,
        merchant_login: str,
        password1: str,
        password2: str,
        password3: str,
        api_base: str = "",
        timeout: float = 15.0,
        signature_algorithm: str = "MD5",
    ):
        self._credentials = (merchant_login, password1, password2, password3)
        self._api_base = api_base
        self._timeout = timeout
        self._signature_algorithm = signature_algorithm

    @classmethod
    def from_settings(cls) -> RobokassaProvider:
        return cls(
            merchant_login=settings.ROBOKASSA_MERCHANT_LOGIN,
            password1=settings.ROBOKASSA_PASSWORD1,
            password2=settings.ROBOKASSA_PASSWORD2,
            password3=settings.ROBOKASSA_PASSWORD3,
            api_base=settings.ROBOKASSA_API_BASE,
            timeout=settings.ROBOKASSA_TIMEOUT_SECONDS,
            signature_algorithm=settings.ROBOKASSA_SIGNATURE_ALGORITHM,
        )

    @classmethod
    def validate_transaction_id(cls, value: str) -> str | None:
        if _INVOICE_ID.fullmatch(value):
            return None
        return "connector_transaction_id must be the payment's Robokassa InvoiceID (InvId): a number from 1 to 2147483647."

    @classmethod
    def check_configuration(cls, settings) -> list[str]:
        problems = []
        if not settings.ROBOKASSA_MERCHANT_LOGIN.strip():
            problems.append("ROBOKASSA_MERCHANT_LOGIN is empty.")
        for number in (1, 2, 3):
            name = f"ROBOKASSA_PASSWORD{number}"
            value = getattr(settings, name, "")
            if not value:
                why = {
                    2: " OpStateExt, which looks payments up, is signed with password #2.",
                    3: " Robokassa's refund API signs every request with password #3.",
                }.get(number, "")
                problems.append(f"{name} is not set.{why}")
            elif len(value) < MIN_PASSWORD_LENGTH:
                problems.append(f"{name} is shorter than {MIN_PASSWORD_LENGTH} characters.")
        if settings.ROBOKASSA_SIGNATURE_ALGORITHM.upper() not in SIGNATURE_ALGORITHMS:
            problems.append(
                f"ROBOKASSA_SIGNATURE_ALGORITHM must be one of {', '.join(SIGNATURE_ALGORITHMS)} "
                "(the shop's hash in Robokassa's technical settings)."
            )
        if settings.ROBOKASSA_TIMEOUT_SECONDS <= 0:
            problems.append("ROBOKASSA_TIMEOUT_SECONDS must be positive.")
        return problems

    # --- calls -------------------------------------------------------------------------

    def _call(self, operation):
        """Run `operation(client)` to completion in a loop of its own; see the module docstring."""
        login, password1, password2, password3 = self._credentials

        async def run():
            client = ApiClient(
                login,
                password1,
                password2,
                password3=password3 or None,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                api_base=self._api_base,
                signature_algorithm=self._signature_algorithm,
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

    def _refundable_state(self, operation: OperationState) -> OperationState:
        if _PAYMENT_STATES.get(operation.state, "") is None:
            raise PermanentProviderError(
                f"Robokassa's operation {operation.invoice_id} was {_STATE_WORDS[operation.state]} "
                f"(state {operation.state}): there is nothing to refund.",
                code="payment_not_paid",
                http_status=422,
            )
        return operation

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
        # Robokassa keeps neither our id, the reason, the metadata nor the key: they stay in
        # our records (see "Money never moves twice" above).
        try:
            refund_sum = to_rubles(amount) if amount is not None else None
            invoice_items = [self._item(item) for item in items or []]
            operation = self._refundable_state(
                self._call(lambda client: client.op_state(connector_transaction_id))
            )
            if not operation.op_key:
                raise PermanentProviderError(
                    f"Robokassa gives no OpKey for operation {connector_transaction_id} (some payment methods "
                    "have none), so its refund API cannot refund it; refund it in Robokassa's cabinet.",
                    code="op_key_missing",
                )
        except TransientProviderError as error:
            # Create was never called: trying again is safe.
            raise TransientProviderError(
                error.message, code=error.code, retry_after=error.retry_after, refund_not_sent=True
            ) from error
        response = self._call(
            lambda client: client.create_refund_v2(
                op_key=operation.op_key, refund_sum=refund_sum, invoice_items=invoice_items or None
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
        raise PermanentProviderError(
            "Robokassa's API cannot list a payment's refunds; look in Robokassa's cabinet "
            f"(operation {connector_transaction_id}).",
            code="lookup_unavailable",
        )

    def get_payment(self, *, connector_transaction_id: str) -> PaymentInfo:
        operation = self._refundable_state(self._call(lambda client: client.op_state(connector_transaction_id)))
        amount = Money(operation.out_sum, CURRENCY)
        return PaymentInfo(
            connector_transaction_id=connector_transaction_id,
            amount=amount,
            # Only "all of it went back" is known (state 60); our own refunds count on top.
            amount_refunded=amount.minor_amount if operation.state == 60 else 0,
            status=_PAYMENT_STATES.get(operation.state) or f"state_{operation.state}",
            # The product is the payment's Shp_product parameter, when the shop sent one.
            product=operation.user_fields.get("shp_product", ""),
            metadata={**operation.user_fields, **({"op_key": operation.op_key} if operation.op_key else {})},
        )
