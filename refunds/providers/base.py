"""The provider protocol, shaped like Prism's unified refund call.

Adapters translate between a provider's API and these frozen results; they never touch
models. Errors come in two kinds: transient (try again later) and permanent (the provider
has said no, with its own code kept).
"""

import datetime
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol

from refunds.money import Money

__all__ = [
    "DisputeInfo",
    "DisputeState",
    "LineItem",
    "Money",
    "PaymentInfo",
    "PermanentProviderError",
    "ProviderError",
    "ProviderEvent",
    "ProviderRefundStatus",
    "RefundProvider",
    "RefundResult",
    "SoldPayment",
    "TransactionNotFound",
    "TransientProviderError",
    "WebhookRejected",
]


class ProviderRefundStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class RefundResult:
    connector_refund_id: str
    status: ProviderRefundStatus
    amount: Money
    failure_code: str = ""
    failure_message: str = ""
    # Set when the provider says: the payment it belongs to, and our id if we made it.
    connector_transaction_id: str = ""
    merchant_refund_id: str = ""


class DisputeState(StrEnum):
    """A dispute (chargeback or inquiry) as the core needs it, whatever the provider calls it."""

    OPEN = "open"  # the cardholder's bank is asking; not decided yet
    WON = "won"  # decided for the merchant: the money came back
    LOST = "lost"  # decided for the cardholder: the money is gone for good
    CLOSED = "closed"  # an inquiry closed without a chargeback


@dataclass(frozen=True)
class DisputeInfo:
    """The payment's latest dispute. `provider_status` is the provider's own word (Stripe:
    needs_response, warning_needs_response, under_review, won, lost, ...); `refundable` is whether
    the provider still takes a refund of the payment (Stripe's `is_charge_refundable`)."""

    dispute_id: str
    state: DisputeState
    provider_status: str
    amount: Money
    reason: str = ""
    refundable: bool = False
    opened_at: datetime.datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state == DisputeState.OPEN


@dataclass(frozen=True)
class PaymentInfo:
    connector_transaction_id: str
    amount: Money
    amount_refunded: int
    status: str
    product: str = ""
    metadata: dict = field(default_factory=dict)
    # Who paid, as the provider names them (Stripe: the Customer id): for "their earlier refunds".
    customer: str = ""
    # The payment's other ids at the provider (Stripe: its Charge); `connector_transaction_id`
    # is then the canonical one (the PaymentIntent where there is one), whichever id was asked.
    aliases: tuple[str, ...] = ()
    # Disputes: `disputes_known` is False when the provider cannot say (the adapter does not
    # report disputes: see RefundProvider.reports_disputes); then `dispute` means nothing.
    # Otherwise `dispute` is the payment's latest dispute, None when it has never been disputed.
    disputes_known: bool = False
    dispute: DisputeInfo | None = None

    @property
    def refundable(self) -> int:
        return max(self.amount.minor_amount - self.amount_refunded, 0)


@dataclass(frozen=True)
class LineItem:
    """One invoice line of a refund: `quantity` units at `cost` each (minor units), with the
    fiscal receipt's tax label (Robokassa's: none, vat0, vat10, vat20, ...)."""

    name: str
    quantity: int
    cost: Money
    tax: str = "none"

    @property
    def total_minor(self) -> int:
        return self.quantity * self.cost.minor_amount

    def as_dict(self) -> dict:
        return {"name": self.name, "quantity": self.quantity, "cost": self.cost.as_dict(), "tax": self.tax}

    @classmethod
    def from_dict(cls, data: dict) -> "LineItem":
        cost = data["cost"]
        return cls(data["name"], int(data["quantity"]), Money(int(cost["minor_amount"]), cost["currency"]), data["tax"])


class ProviderError(Exception):
    """`code` is the provider's own code; `http_status` follows Prism (402, 404, 422)."""

    http_status = 402

    def __init__(self, message: str, *, code: str = "provider_error", http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        if http_status is not None:
            self.http_status = http_status


class TransientProviderError(ProviderError):
    """Timeouts, 5xx, 429, connection errors: the same call may succeed later."""

    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        code: str = "provider_unavailable",
        retry_after: float | None = None,
        refund_not_sent: bool = False,
    ):
        super().__init__(message, code=code)
        self.retry_after = retry_after
        # The adapter knows this attempt never reached the provider's create call (it failed
        # while preparing it), so it cannot have refunded: trying again is safe.
        self.refund_not_sent = refund_not_sent
        self.retry_in: float | None = None  # set by the service that decides when to try again


class PermanentProviderError(ProviderError):
    """The provider refused: declined, amount too large, already refunded, ..."""


class TransactionNotFound(PermanentProviderError):
    http_status = 404


class WebhookRejected(Exception):
    """A webhook delivery that is not taken: bad signature, not an event, not configured.
    `code` and `http_status` are what the endpoint answers."""

    def __init__(self, message: str, *, code: str, http_status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.field = field


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook event, as the core needs it; `payload` is the event as sent (stored)."""

    event_id: str
    type: str
    payload: dict
    # The event is about a payment's refunds: reconcile the payments in `transaction_ids`.
    is_refund_event: bool = False
    # The event is about a payment's dispute (opened, money withdrawn, closed): refresh the
    # payment's dispute state and act on it (reports_disputes).
    is_dispute_event: bool = False
    transaction_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SoldPayment:
    """A payment the provider took, as a sale: what was received, when, with its metadata."""

    connector_transaction_id: str
    amount: Money
    created: datetime.datetime
    status: str
    metadata: dict = field(default_factory=dict)



class RefundProvider(Protocol):
    """Adapters subclass this protocol: each capability the core asks about is declared here
    with its default (the cautious answer), and each optional call refuses by default."""

    name: ClassVar[str]
    # Refunds by invoice line (LineItem) are accepted.
    supports_items: ClassVar[bool] = False
    # The tax labels an item may carry (LineItem.tax).
    item_tax_rates: ClassVar[tuple[str, ...]] = ()
    # The provider honours `idempotency_key`: asking twice creates one refund. When False the
    # services look for a refund made by an earlier, unanswered call before creating again.
    idempotent_create: ClassVar[bool] = False
    # One adapter may serve every call of a process (get_provider keeps it): it holds no per-call
    # state and its HTTP client is safe across threads, so its connections are reused.
    reusable: ClassVar[bool] = False
    # `list_refunds` answers (else it raises PermanentProviderError "lookup_unavailable").
    lists_refunds: ClassVar[bool] = False
    # `find_refund` answers: the provider can find a refund by our merchant_refund_id (Stripe: in
    # the refund's metadata), so a refund whose earlier create went unanswered is looked for
    # before it is sent again once the idempotency key may have been forgotten.
    finds_refunds: ClassVar[bool] = False
    # How long the provider's idempotency keys are relied on after their first use; None for
    # ever. Past it, a create whose earlier call went unanswered looks first (`find_refund`).
    idempotency_key_trusted_for: datetime.timedelta | None = None
    # `list_payments` answers: sales can be synced from this provider.
    lists_payments: ClassVar[bool] = False
    # `parse_webhook` takes the provider's webhook deliveries (POST /webhooks/<name>/).
    receives_webhooks: ClassVar[bool] = False
    # `get_payment` reports the payment's disputes (PaymentInfo.disputes_known) and its webhooks
    # announce them (ProviderEvent.is_dispute_event). When False, a dispute is never known here:
    # intake cannot refuse for one and the provider's own refusal is the only guard.
    reports_disputes: ClassVar[bool] = False
    # A JSON Schema `pattern` for the provider's transaction ids (the OpenAPI schema shows it).
    transaction_id_pattern: ClassVar[str]

    @classmethod
    def from_settings(cls) -> "RefundProvider":
        """The adapter configured from django.conf.settings."""
        ...

    @classmethod
    def validate_transaction_id(cls, value: str) -> str | None:
        """None when `value` has the shape of this provider's transaction id, else why not."""
        ...

    @classmethod
    def check_configuration(cls, settings) -> list[str]:
        """What is missing or wrong in the settings for this provider (empty when ready)."""
        ...

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
        """`reason` is the person's note, `reason_code` our ReasonCode's code ("" for none): the
        adapter maps the code to the provider's own reasons where it has any."""
        ...

    def get_refund(self, *, connector_refund_id: str, connector_transaction_id: str) -> RefundResult: ...

    def get_payment(self, *, connector_transaction_id: str) -> PaymentInfo: ...

    def list_refunds(self, *, connector_transaction_id: str) -> list[RefundResult]:
        """Every refund of the payment, whoever made it (when `lists_refunds`)."""
        raise PermanentProviderError(
            f"{self.name} cannot list a payment's refunds (payment {connector_transaction_id}).",
            code="lookup_unavailable",
        )

    def find_refund(self, *, merchant_refund_id: str, connector_transaction_id: str) -> RefundResult | None:
        """The refund of the payment that we made as `merchant_refund_id`, or None when the
        provider has none (when `finds_refunds`)."""
        raise PermanentProviderError(
            f"{self.name} cannot look a refund up by our id ({merchant_refund_id}).", code="lookup_unavailable"
        )

    def list_payments(
        self,
        *,
        created_gte: datetime.datetime,
        created_lt: datetime.datetime,
        before_request: Callable[[], object] | None = None,
    ) -> Iterator[SoldPayment]:
        """Succeeded payments created in [created_gte, created_lt), every page; `before_request`
        is called before each HTTP request (the shared rate limiter). When `lists_payments`."""
        raise PermanentProviderError(f"{self.name} cannot list its payments.", code="lookup_unavailable")

    def parse_webhook(self, *, payload: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Verify a webhook delivery and read its event (when `receives_webhooks`); raises
        WebhookRejected when it is not taken."""
        raise WebhookRejected(f"{self.name} sends no webhooks here.", code="unknown_provider", http_status=404)

    @classmethod
    def webhook_event(cls, payload: dict) -> ProviderEvent:
        """An event that `parse_webhook` verified and the core stored, read again."""
        raise WebhookRejected(f"{cls.name} sends no webhooks here.", code="unknown_provider", http_status=404)
