"""Refunds with Stripe's validation, statuses and lifecycle.

localstripe's Refund always succeeds at once, accepts any amount and scans the
whole store to compute a charge's refunds; this module replaces it.
"""

import asyncio
import heapq
import time

from localstripe.resources import (BalanceTransaction, Event, Refund,
                                   StripeObject, store)

from . import disputes
from . import (BEHAVIOR_METADATA_KEY, CARD_BEHAVIORS, DEFAULT_BEHAVIOR,
               REFUND_BEHAVIORS)
from .errors import invalid, no_such
from .events import emit
from .listing import check_params, integer
from .state import STATE

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CREATE_PARAMS = frozenset({
    "amount", "charge", "currency", "customer", "expand",
    "instructions_email", "metadata", "origin", "payment_intent", "reason",
    "refund_application_fee", "reverse_transfer"})
UPDATE_PARAMS = frozenset({"metadata", "expand"})
# Stripe holds pending refunds against the charge; failed/canceled give back.
HOLDING = frozenset({"pending", "requires_action", "succeeded"})
# Which final statuses a refund can still move to, by current status.
SETTLE_TO = {
    "pending": frozenset({"succeeded", "failed", "canceled"}),
    "requires_action": frozenset({"succeeded", "failed", "canceled"}),
    "succeeded": frozenset({"failed"}),  # as with test card 4000000000005126
}
DEFAULT_FAILURE_REASON = "expired_or_canceled_card"
# Fields whose old values go into refund.updated's previous_attributes.
LIFECYCLE_FIELDS = ("status", "pending_reason", "next_action",
                    "failure_reason", "failure_balance_transaction")

ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw",
                          "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf",
                          "xof", "xpf"})
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


class SandboxRefund(Refund):
    """A refund shaped like Stripe's current API.

    Also stands in for localstripe's Refund (partial captures create one).
    """

    def __init__(self, charge, amount, reason=None, metadata=None):
        charge_obj = store["charge:" + charge]
        StripeObject.__init__(self)  # registers it in localstripe's store
        self.amount = amount
        self.charge = charge
        self.currency = charge_obj.currency
        self.description = None
        self.destination_details = None
        self.failure_balance_transaction = None
        self.failure_reason = None
        self.instructions_email = None
        self.metadata = metadata or {}
        self.next_action = None
        self.payment_intent = charge_obj.payment_intent
        self.pending_reason = None
        self.reason = reason
        self.receipt_number = None
        self.source_transfer_reversal = None
        self.status = "succeeded"
        self.transfer_reversal = None
        self._settle_at = None  # wall-clock time of the scheduled settlement
        self._settle_to = None
        self.balance_transaction = _balance_transaction(self, -amount,
                                                        "refund")
        _index(self)
        STATE.stats.bump("refunds_created")

    def _export(self, expand=None):
        if expand:
            return super()._export(expand)
        # No computed fields, so skip localstripe's costly dir() scan: a
        # refund is exported 2-3 times per create (response, events).
        data = {key: value.copy() if isinstance(value, dict) else value
                for key, value in vars(self).items()
                if not key.startswith("_")}
        data["object"] = self.object
        return data


def _index(refund):
    STATE.refunds[refund.id] = refund
    STATE.refunds_by_charge.setdefault(refund.charge, []).append(refund)


def _balance_transaction(refund, amount, kind):
    # localstripe only knows the 'refund' kind; Stripe also has
    # 'refund_failure' for the transaction that gives a failed refund back.
    txn = BalanceTransaction(amount=amount, currency=refund.currency,
                             description="REFUND FOR CHARGE",
                             exchange_rate=1.0, reporting_category="refund",
                             source=refund.id, type="refund")
    txn.type = txn.reporting_category = kind
    return txn.id


def rebuild_index():
    """Index refunds and events of a store loaded from --state-file."""
    for obj in store.values():
        if isinstance(obj, SandboxRefund):
            _index(obj)
            if obj._settle_at is not None:
                heapq.heappush(STATE.settlements, (obj._settle_at, obj.id))
        elif isinstance(obj, Event):
            STATE.events.append(obj)


# Read side ---------------------------------------------------------------

def refunds_of(charge_id):
    return STATE.refunds_by_charge.get(charge_id, [])


def amount_refunded(charge_id):
    return sum(r.amount for r in refunds_of(charge_id) if r.status in HOLDING)


def get_refund(refund_id, param="id"):
    refund = STATE.refunds.get(refund_id)
    if refund is None:
        raise no_such("refund", refund_id, param)
    return refund


def _lookup(kind, id, param):
    obj = store.get(f"{kind}:{id}")
    if obj is None:
        raise no_such(kind, id, param)
    return obj


def _charge_of(payment_intent_id):
    """The PaymentIntent's charge, or None if it has none yet."""
    return _lookup("payment_intent", payment_intent_id,
                   "payment_intent").latest_charge


def list_source(params):
    """Refunds (oldest first) selected by the charge/payment_intent filter."""
    if params.get("payment_intent"):
        charge = _charge_of(params["payment_intent"])
        return refunds_of(charge.id) if charge else []
    if params.get("charge"):
        return refunds_of(_lookup("charge", params["charge"], "charge").id)
    return list(STATE.refunds.values())


# Write side --------------------------------------------------------------

def create_refund(params):
    check_params(params, CREATE_PARAMS)
    charge = _refundable_charge(params.get("charge"),
                                params.get("payment_intent"))
    amount = params.get("amount")
    if amount is not None:
        amount = integer(amount, "amount", minimum=1)
    reason = params.get("reason")
    if reason is not None and reason not in REASONS:
        raise invalid("Invalid reason: must be one of duplicate, fraudulent, "
                      "or requested_by_customer", param="reason")
    metadata = merge_metadata({}, params.get("metadata"))
    disputes.refuse_refund_if_charged_back(charge)

    remaining = charge.amount - amount_refunded(charge.id)
    if remaining <= 0:
        raise invalid(f"Charge {charge.id} has already been refunded.",
                      code="charge_already_refunded")
    if amount is None:
        amount = remaining
    elif amount > remaining:
        raise invalid(
            f"Refund amount ({_money(amount, charge.currency)}) is greater "
            f"than unrefunded amount on charge "
            f"({_money(remaining, charge.currency)})",
            param="amount", code="amount_too_large")
    initial, final = REFUND_BEHAVIORS[_behavior(charge)]

    refund = SandboxRefund(charge.id, amount, reason=reason,
                           metadata=metadata)
    refund.status = initial
    if initial == "pending":
        refund.pending_reason = "processing"
    elif initial == "requires_action":
        refund.next_action = _display_details(refund)
    if final is not None:
        _schedule(refund, final)
    emit("refund.created", refund)
    emit("charge.refunded", charge)
    return refund


def _refundable_charge(charge_id, payment_intent_id):
    if payment_intent_id is not None:
        charge = _charge_of(payment_intent_id)
        if charge is None or charge.status != "succeeded":
            raise invalid(f"This PaymentIntent ({payment_intent_id}) does not "
                          "have a successful charge to refund.",
                          param="payment_intent")
        if charge_id is not None and charge_id != charge.id:
            raise invalid(f"Charge {charge_id} does not belong to "
                          f"PaymentIntent {payment_intent_id}.",
                          param="charge")
        return charge
    if charge_id is None:
        raise invalid("One of the following params should be provided for "
                      "this request: payment_intent or charge.",
                      code="parameter_missing")
    charge = _lookup("charge", charge_id, "charge")
    if charge.status != "succeeded":
        raise invalid(f"Charge {charge_id} has not succeeded; there is "
                      "nothing to refund.", param="charge")
    return charge


def _behavior(charge):
    behavior = charge.metadata.get(BEHAVIOR_METADATA_KEY)
    if behavior is None:
        card = store.get(f"payment_method:{charge.payment_method}")
        behavior = CARD_BEHAVIORS.get(getattr(card, "_card_number", None),
                                      DEFAULT_BEHAVIOR)
    if behavior not in REFUND_BEHAVIORS:
        raise invalid(f"Sandbox: unknown {BEHAVIOR_METADATA_KEY} "
                      f"'{behavior}' on charge {charge.id}; expected one of "
                      f"{', '.join(REFUND_BEHAVIORS)}.")
    return behavior


def _display_details(refund):
    # What Stripe shows for refunds that wait on the customer.
    return {"type": "display_details",
            "display_details": {
                "email_sent": {"email_sent_at": refund.created,
                               "email_sent_to": "customer@example.com"},
                "expires_at": refund.created + 7 * 86400}}


def _money(amount, currency):
    symbol = SYMBOLS.get(currency, currency.upper() + " ")
    if currency in ZERO_DECIMAL:
        return f"{symbol}{amount}"
    return f"{symbol}{amount // 100}.{amount % 100:02d}"


def merge_metadata(current, update):
    """Stripe's metadata update: merge, "" unsets, 50 keys of 40/500 chars."""
    if update is None:
        return current
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise invalid("Invalid object", param="metadata")
    merged = dict(current)
    for key, value in update.items():
        if len(key) > 40:
            raise invalid("Metadata keys can have up to 40 characters; "
                          f"'{key}' has {len(key)}.", param="metadata")
        if value in ("", None):
            merged.pop(key, None)
            continue
        value = value if isinstance(value, str) else str(value)
        if len(value) > 500:
            raise invalid("Metadata values can have up to 500 characters; "
                          f"the value of '{key}' has {len(value)}.",
                          param=f"metadata[{key}]")
        merged[key] = value
    if len(merged) > 50:
        raise invalid("Metadata can have up to 50 keys; this request would "
                      f"set {len(merged)}.", param="metadata")
    return merged


def update_refund(refund_id, params):
    check_params(params, UPDATE_PARAMS)
    refund = get_refund(refund_id)
    previous = refund.metadata
    refund.metadata = merge_metadata(previous, params.get("metadata"))
    if refund.metadata != previous:
        emit("refund.updated", refund, {"metadata": previous})
    return refund


def cancel_refund(refund_id):
    """Stripe only cancels refunds that wait on the customer."""
    refund = get_refund(refund_id)
    if refund.status != "requires_action":
        raise invalid(f"Refund {refund_id} has status {refund.status}; only "
                      "refunds with status requires_action can be canceled.")
    settle(refund, "canceled")
    return refund


def force_settle(refund_id, status, failure_reason=None):
    refund = get_refund(refund_id)
    if status not in SETTLE_TO.get(refund.status, ()):
        raise invalid(f"Cannot move refund {refund_id} from {refund.status} "
                      f"to {status!r}.", param="status")
    settle(refund, status, failure_reason)
    return refund


def settle(refund, status, failure_reason=None):
    before = {field: getattr(refund, field) for field in LIFECYCLE_FIELDS}
    refund.status = status
    refund.pending_reason = None
    refund.next_action = None
    refund._settle_at = None  # cancels a scheduled settlement
    if status == "failed":
        refund.failure_reason = failure_reason or DEFAULT_FAILURE_REASON
        refund.failure_balance_transaction = _balance_transaction(
            refund, refund.amount, "refund_failure")
    previous = {field: value for field, value in before.items()
                if getattr(refund, field) != value}
    STATE.dirty = True
    emit("refund.updated", refund, previous)
    emit("charge.refund.updated", refund, previous)
    if status == "failed":
        emit("refund.failed", refund)


# Scheduled settlement ------------------------------------------------------
# One timer for the earliest due refund (a heap holds the rest), so webhooks
# fire without anyone reading; reads also settle what is due (settle_due).

class _Timer:
    handle = None
    due = None


def _schedule(refund, status):
    refund._settle_at = time.time() + STATE.settle_seconds
    refund._settle_to = status
    heapq.heappush(STATE.settlements, (refund._settle_at, refund.id))
    arm_timer()


def settle_due():
    now = time.time()
    heap = STATE.settlements
    while heap and heap[0][0] <= now:
        due, refund_id = heapq.heappop(heap)
        refund = STATE.refunds.get(refund_id)
        # A mismatch means it was settled by hand or the data was flushed.
        if refund is not None and refund._settle_at == due:
            settle(refund, refund._settle_to)


def arm_timer():
    heap = STATE.settlements
    if not heap:
        return
    due = heap[0][0]
    if _Timer.handle is not None:
        if _Timer.due <= due:
            return
        _Timer.handle.cancel()
    _Timer.due = due
    _Timer.handle = asyncio.get_running_loop().call_later(
        max(0.0, due - time.time()), _on_timer)


def _on_timer():
    _Timer.handle = None
    settle_due()
    arm_timer()
