"""Stripe's webhook events: which types matter, the body read as a Stripe event (or refused with a
400, so Stripe stops retrying), and the payment ids an event points at. The signature is checked
before (refunds.providers.stripe.StripeProvider.parse_webhook)."""

from __future__ import annotations

import json

from refunds.providers.base import WebhookRejected
from refunds.text import is_printable, unstorable_text_path

# The events that are about a payment's refunds (the rest are stored and left alone).
REFUND_EVENT_TYPES = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated", "charge.refunded"}
)

# The events about a payment's disputes.
DISPUTE_EVENT_TYPES = frozenset(
    f"charge.dispute.{what}" for what in ("created", "updated", "closed", "funds_withdrawn", "funds_reinstated")
)


def event_from_body(payload: bytes) -> dict:
    """The verified body as an event: standard JSON only (NaN, Infinity or 1e400 would be stored as
    JSON no database takes), with the fields processing reads."""
    try:
        data = json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError:
        raise WebhookRejected("The body is not JSON.", code="invalid_payload") from None
    return _checked_event(data)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is beyond a double")
    return value


def _checked_event(data) -> dict:
    """The event, when it has what webhook_event and processing read: an object with a printable
    string `id` and `type`, `data.object` an object when present, and no text a database cannot
    store anywhere (the payload is stored as sent)."""

    def reject(message: str, field: str | None = None):
        raise WebhookRejected(f"The body is not a Stripe event: {message}", code="invalid_payload", field=field)

    if not isinstance(data, dict):
        reject("not a JSON object.")
    for key, longest in (("id", 255), ("type", 100)):
        value = data.get(key)
        if not isinstance(value, str) or not value or len(value) > longest or not is_printable(value):
            reject(f"`{key}` must be a printable string of 1 to {longest} characters.", key)
    inner = data.get("data", {})
    if not isinstance(inner, dict) or not isinstance(inner.get("object", {}), dict):
        reject("`data.object` must be an object.", "data.object")
    path = unstorable_text_path(data)
    if path is not None:
        reject(f"`{path}` holds a NUL or a lone surrogate.", path)
    return data


def event_transaction_ids(event: dict) -> frozenset[str]:
    """The payment ids (PaymentIntent and Charge) an event's object points at."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return frozenset()
    found = [obj.get("id")] if obj.get("object") == "charge" else []
    for key in ("payment_intent", "charge"):
        value = obj.get(key)
        found.append(value.get("id") if isinstance(value, dict) else value)
    # Only strings are ids: an event is stored as sent, and a field of another type names nothing.
    return frozenset(i for i in found if isinstance(i, str) and i)
