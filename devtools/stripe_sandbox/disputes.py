"""Disputes (chargebacks and inquiries) shaped like Stripe's Dispute object.

Stripe opens disputes itself when a cardholder's bank asks; there is no API to create one. The
sandbox opens and closes them from the test side (POST /_config/disputes...) and sends the
events Stripe sends: charge.dispute.created, charge.dispute.funds_withdrawn (a chargeback takes
the money at once), charge.dispute.closed and, for a won chargeback, charge.dispute.funds_reinstated.

While a chargeback is open or lost, Stripe refuses refunds of the charge with `charge_disputed`
(`is_charge_refundable` false); an inquiry (warning_*) and a won chargeback leave it refundable.
"""

import time

from localstripe.resources import StripeObject, store

from .errors import StripeError, invalid, no_such
from .events import emit
from .listing import check_params, integer
from .state import STATE

# Stripe's dispute reasons (Dispute.reason).
REASONS = ("bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
           "debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details",
           "insufficient_funds", "noncompliant", "product_not_received", "product_unacceptable",
           "subscription_canceled", "unrecognized")
OPEN_STATUSES = frozenset({"warning_needs_response", "warning_under_review", "needs_response",
                           "under_review"})
# Stripe's text for the refusal (docs.stripe.com/error-codes#charge-disputed).
CHARGE_DISPUTED_MESSAGE = ("The charge you’re attempting to refund has been charged back. Check "
                           "the disputes documentation to learn how to respond to the dispute.")
OPEN_PARAMS = frozenset({"payment_intent", "charge", "amount", "reason", "inquiry", "metadata"})
CLOSE_PARAMS = frozenset({"status"})


class SandboxDispute(StripeObject):
    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge, amount, reason, inquiry, metadata=None):
        StripeObject.__init__(self)  # registers it in localstripe's store
        self.amount = amount
        self.balance_transactions = []
        self.charge = charge.id
        self.currency = charge.currency
        self.evidence = {"uncategorized_text": None, "customer_name": None,
                         "customer_email_address": None, "product_description": None,
                         "receipt": None, "refund_policy": None}
        self.evidence_details = {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False,
                                 "past_due": False, "submission_count": 0}
        self.is_charge_refundable = inquiry
        self.metadata = metadata or {}
        self.payment_intent = charge.payment_intent
        self.payment_method_details = {"type": "card", "card": {
            "brand": "visa", "case_type": "inquiry" if inquiry else "chargeback",
            "network_reason_code": "10.4" if reason == "fraudulent" else "13.1"}}
        self.reason = reason
        self.status = "warning_needs_response" if inquiry else "needs_response"
        STATE.disputes_by_charge.setdefault(charge.id, []).append(self)

    def _export(self, expand=None):
        data = {key: value.copy() if isinstance(value, (dict, list)) else value
                for key, value in vars(self).items() if not key.startswith("_")}
        data["object"] = self.object
        return data


def disputes_of(charge_id):
    return STATE.disputes_by_charge.get(charge_id, [])


def is_disputed(charge_id):
    return bool(disputes_of(charge_id))


def refuse_refund_if_charged_back(charge):
    """Stripe's answer to a refund of a charge a chargeback holds."""
    if any(not d.is_charge_refundable for d in disputes_of(charge.id)):
        raise StripeError(400, CHARGE_DISPUTED_MESSAGE, code="charge_disputed", param="charge")


def rebuild_index():
    for obj in store.values():
        if isinstance(obj, SandboxDispute):
            STATE.disputes_by_charge.setdefault(obj.charge, []).append(obj)


def get_dispute(dispute_id):
    obj = store.get(f"dispute:{dispute_id}")
    if not isinstance(obj, SandboxDispute):
        raise no_such("dispute", dispute_id, "dispute")
    return obj


def _charge(params):
    payment_intent = params.get("payment_intent")
    if payment_intent:
        intent = store.get(f"payment_intent:{payment_intent}")
        if intent is None:
            raise no_such("payment_intent", payment_intent, "payment_intent")
        charge = intent.latest_charge
    elif params.get("charge"):
        charge = store.get(f"charge:{params['charge']}")
        if charge is None:
            raise no_such("charge", params["charge"], "charge")
    else:
        raise invalid("Name the payment_intent or the charge to dispute.",
                      code="parameter_missing")
    if charge is None or charge.status != "succeeded":
        raise invalid("Only a succeeded charge can be disputed.", param="charge")
    return charge


def open_dispute(params):
    check_params(params, OPEN_PARAMS)
    charge = _charge(params)
    if any(d.status in OPEN_STATUSES for d in disputes_of(charge.id)):
        raise invalid(f"Charge {charge.id} already has an open dispute.", param="charge")
    amount = params.get("amount")
    amount = charge.amount if amount in (None, "") else integer(amount, "amount", minimum=1)
    if amount > charge.amount:
        raise invalid("A dispute is at most the charge's amount.", param="amount")
    reason = params.get("reason") or "general"
    if reason not in REASONS:
        raise invalid(f"Invalid reason: must be one of {', '.join(REASONS)}", param="reason")
    inquiry = params.get("inquiry") in (True, 1, "true", "1")
    dispute = SandboxDispute(charge, amount, reason, inquiry, params.get("metadata"))
    STATE.dirty = True
    emit("charge.dispute.created", dispute)
    if not inquiry:
        dispute.balance_transactions.append({"amount": -amount, "currency": charge.currency,
                                             "reporting_category": "dispute"})
        emit("charge.dispute.funds_withdrawn", dispute)
    return dispute


def close_dispute(dispute_id, params):
    check_params(params, CLOSE_PARAMS)
    dispute = get_dispute(dispute_id)
    status = params.get("status")
    if status not in ("won", "lost"):
        raise invalid("status must be won or lost.", param="status")
    if dispute.status not in OPEN_STATUSES:
        raise invalid(f"Dispute {dispute_id} is already closed ({dispute.status}).", param="status")
    previous = {"status": dispute.status}
    inquiry = dispute.status.startswith("warning_")
    # An inquiry that is not escalated closes as warning_closed, whichever way it went.
    dispute.status = "warning_closed" if inquiry else status
    dispute.is_charge_refundable = inquiry or status == "won"
    STATE.dirty = True
    emit("charge.dispute.closed", dispute, previous)
    if not inquiry and status == "won":
        dispute.balance_transactions.append({"amount": dispute.amount, "currency": dispute.currency,
                                             "reporting_category": "dispute_reversal"})
        emit("charge.dispute.funds_reinstated", dispute)
    return dispute


def list_source(params):
    """Disputes (oldest first) selected by the charge/payment_intent filter."""
    if params.get("payment_intent"):
        intent = store.get(f"payment_intent:{params['payment_intent']}")
        if intent is None:
            raise no_such("payment_intent", params["payment_intent"], "payment_intent")
        return list(disputes_of(intent.latest_charge.id)) if intent.latest_charge else []
    if params.get("charge"):
        return list(disputes_of(params["charge"]))
    return [d for charges in STATE.disputes_by_charge.values() for d in charges]
