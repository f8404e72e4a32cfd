"""Domain errors raised by services. Interfaces (API, admin, forms) turn them into responses;
`code` is the machine-readable code the API returns."""


class RefundError(Exception):
    code = "refund_error"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class RefundValidationError(RefundError):
    code = "invalid"


class PermissionDenied(RefundError):
    code = "permission_denied"
    http_status = 403


class IdempotencyConflict(RefundError):
    code = "idempotency_conflict"
    http_status = 409


class InvalidTransition(RefundError):
    code = "invalid_transition"
    http_status = 409


class TransactionNotFound(RefundError):
    code = "transaction_not_found"
    http_status = 404


class AmountExceedsRefundable(RefundError):
    code = "amount_exceeds_refundable"
    http_status = 422


class CurrencyMismatch(RefundError):
    code = "currency_mismatch"
    http_status = 422


class ProviderUnavailable(RefundError):
    code = "provider_unavailable"
    http_status = 503


class PaymentDisputed(RefundError):
    """The payment has an open dispute (chargeback or inquiry): refunding now could pay the
    customer twice. A finance manager may file it anyway with `dispute_override_reason`."""

    code = "payment_disputed"
    http_status = 422
