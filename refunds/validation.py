"""Parsing of a refund request body: strict, with one machine-readable code per failure."""

import re

from refunds.errors import RefundValidationError
from refunds.reason_codes import active_reason_codes
from refunds.money import MAX_MINOR_AMOUNT, Money, is_known_currency
from refunds.providers import provider_class, provider_names
from refunds.providers.base import LineItem

MERCHANT_REFUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
# Any provider's ids fit this; each adapter's validate_transaction_id says what is its own.
TRANSACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,254}$")
# C0/C1 control characters except tab and newline, which a reason may contain; and lone
# surrogates, which JSON can carry but no database can store.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_METADATA_KEYS = 20
MAX_ITEMS = 100
MAX_ITEM_QUANTITY = 10_000
ITEM_FIELDS = {"name", "quantity", "cost", "tax"}
TAX_LABEL = re.compile(r"^[a-z0-9_]{1,16}$")
FIELDS = {
    "merchant_refund_id", "provider", "connector_transaction_id", "amount", "reason", "reason_code", "metadata", "product",
    "items",
}


def check_printable(value: str, *, field: str) -> str:
    if _CONTROL.search(value):
        raise RefundValidationError(f"{field} contains control characters.", field=field, code="invalid_characters")
    return value


def _text(data: dict, field: str, *, max_length: int, required: bool = False, default: str = "") -> str:
    value = data.get(field, None)
    if value is None:
        if required:
            raise RefundValidationError(f"{field} is required.", field=field, code="required")
        return default
    if not isinstance(value, str):
        raise RefundValidationError(f"{field} must be a string.", field=field, code="invalid_type")
    if required and not value.strip():
        raise RefundValidationError(f"{field} is required.", field=field, code="required")
    if len(value) > max_length:
        raise RefundValidationError(f"{field} is at most {max_length} characters.", field=field, code="too_long")
    return check_printable(value, field=field)


def parse_amount(value, *, field: str = "amount") -> Money | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RefundValidationError(
            f'{field} must be an object {{"minor_amount": int, "currency": "USD"}}.', field=field, code="invalid_type"
        )
    unknown = set(value) - {"minor_amount", "currency"}
    if unknown:
        raise RefundValidationError(f"Unknown {field} field {sorted(unknown)[0]!r}.", field=field, code="unknown_field")
    minor = value.get("minor_amount")
    if isinstance(minor, float) and minor.is_integer():
        minor = int(minor)  # JSON has one number type: 1500.0 is the integer 1500
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise RefundValidationError(
            f"{field}.minor_amount must be an integer number of minor units.", field=f"{field}.minor_amount", code="invalid_type"
        )
    if minor <= 0:
        raise RefundValidationError(f"{field}.minor_amount must be positive.", field=f"{field}.minor_amount", code="invalid_amount")
    if minor > MAX_MINOR_AMOUNT:
        raise RefundValidationError(f"{field}.minor_amount is too large.", field=f"{field}.minor_amount", code="invalid_amount")
    currency = value.get("currency")
    if not isinstance(currency, str) or not is_known_currency(currency.upper()):
        raise RefundValidationError(
            f"{field}.currency must be a known ISO 4217 code such as USD.", field=f"{field}.currency", code="invalid_currency"
        )
    return Money(minor, currency.upper())


def parse_items(value) -> list[LineItem]:
    """Invoice lines: [{"name", "quantity", "cost": {"minor_amount", "currency"}, "tax"}]. Whether
    the provider takes them and whether they add up is the service's to say."""
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise RefundValidationError("items must be a non-empty list.", field="items", code="invalid_type")
    if len(value) > MAX_ITEMS:
        raise RefundValidationError(f"items has at most {MAX_ITEMS} entries.", field="items", code="too_many_items")
    items = []
    for index, raw in enumerate(value):
        field = f"items[{index}]"
        if not isinstance(raw, dict):
            raise RefundValidationError(f"{field} must be an object.", field=field, code="invalid_type")
        unknown = set(raw) - ITEM_FIELDS
        if unknown:
            name = sorted(unknown)[0]
            raise RefundValidationError(f"Unknown {field} field {name!r}.", field=f"{field}.{name}", code="unknown_field")
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise RefundValidationError(f"{field}.name must be a string.", field=f"{field}.name", code="invalid_type")
        if not name or not name.strip():
            raise RefundValidationError(f"{field}.name is required.", field=f"{field}.name", code="required")
        if len(name) > 128:
            raise RefundValidationError(f"{field}.name is at most 128 characters.", field=f"{field}.name", code="too_long")
        check_printable(name, field=f"{field}.name")
        quantity = raw.get("quantity", 1)
        if isinstance(quantity, float) and quantity.is_integer():
            quantity = int(quantity)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_ITEM_QUANTITY:
            raise RefundValidationError(
                f"{field}.quantity is a whole number from 1 to {MAX_ITEM_QUANTITY}.",
                field=f"{field}.quantity",
                code="invalid_type" if not isinstance(quantity, int) or isinstance(quantity, bool) else "invalid_amount",
            )
        if raw.get("cost") is None:
            raise RefundValidationError(f"{field}.cost is required.", field=f"{field}.cost", code="required")
        cost = parse_amount(raw["cost"], field=f"{field}.cost")
        tax = raw.get("tax", "none")
        if not isinstance(tax, str) or not TAX_LABEL.match(tax):
            raise RefundValidationError(
                f"{field}.tax is a tax label such as none or vat20.", field=f"{field}.tax", code="invalid_tax"
            )
        items.append(LineItem(name=name.strip(), quantity=quantity, cost=cost, tax=tax))
    return items


def parse_metadata(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RefundValidationError("metadata must be an object.", field="metadata", code="invalid_type")
    if len(value) > MAX_METADATA_KEYS:
        raise RefundValidationError(
            f"metadata has at most {MAX_METADATA_KEYS} keys.", field="metadata", code="too_many_metadata_keys"
        )
    clean = {}
    for key, item in value.items():
        if not (1 <= len(key) <= 40) or _CONTROL.search(key):
            raise RefundValidationError(
                "metadata keys are 1 to 40 printable characters.", field="metadata", code="invalid_metadata"
            )
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise RefundValidationError(
                f"metadata[{key!r}] must be a string or a number.", field="metadata", code="invalid_metadata"
            )
        text = str(item)
        if len(text) > 500 or _CONTROL.search(text):
            raise RefundValidationError(
                f"metadata[{key!r}] is at most 500 printable characters.", field="metadata", code="invalid_metadata"
            )
        clean[key] = text
    return clean


def parse_reason_code(value) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise RefundValidationError("reason_code must be a string.", field="reason_code", code="invalid_type")
    if value not in active_reason_codes():
        raise RefundValidationError(
            f"reason_code is one of {', '.join(active_reason_codes())}.", field="reason_code", code="unknown_reason_code"
        )
    return value


def parse_refund_request(data) -> dict:
    """Validate a POST /api/refunds/ body; return keyword arguments for refund_request_create."""
    if not isinstance(data, dict):
        raise RefundValidationError("The body must be a JSON object.", code="invalid_body")
    unknown = set(data) - FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise RefundValidationError(f"Unknown field {field!r}.", field=field, code="unknown_field")
    merchant_refund_id = _text(data, "merchant_refund_id", max_length=64, required=True)
    if not MERCHANT_REFUND_ID.match(merchant_refund_id):
        raise RefundValidationError(
            "merchant_refund_id is 1-64 characters of letters, digits and . _ : -",
            field="merchant_refund_id",
            code="invalid_format",
        )
    provider = _text(data, "provider", max_length=32, default="stripe")
    if provider not in provider_names():
        raise RefundValidationError(
            f"provider must be one of {', '.join(provider_names()) or '(none enabled)'}.",
            field="provider",
            code="unknown_provider",
        )
    txn = _text(data, "connector_transaction_id", max_length=255, required=True)
    problem = provider_class(provider).validate_transaction_id(txn) if TRANSACTION_ID.match(txn) else (
        "connector_transaction_id is letters, digits, _ and -."
    )
    if problem:
        raise RefundValidationError(problem, field="connector_transaction_id", code="invalid_format")
    return {
        "merchant_refund_id": merchant_refund_id,
        "provider": provider,
        "connector_transaction_id": txn,
        "amount": parse_amount(data.get("amount")),
        "reason": _text(data, "reason", max_length=500),
        "reason_code": parse_reason_code(data.get("reason_code")),
        "metadata": parse_metadata(data.get("metadata")),
        "product": _text(data, "product", max_length=200),
        "items": parse_items(data.get("items")),
    }
