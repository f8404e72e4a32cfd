"""Changes to localstripe's objects so they behave like today's Stripe API."""

import random
import string

from localstripe import resources
from localstripe.resources import (Charge, PaymentIntent, PaymentMethod,
                                   StripeObject, store)

from . import BEHAVIOR_METADATA_KEY, CARD_TEST_PAYMENT_METHODS
from . import disputes, events, refunds
from .listing import paginate

_applied = False


def apply():
    global _applied
    if _applied:
        return
    _applied = True

    # localstripe pickles the whole store to /tmp on every write, which is
    # slow and leaks state between runs; --state-file persistence replaces it.
    resources.Store.dump_to_disk = lambda self: None
    # Every Event goes through our recorder (fast signed delivery, index).
    resources.schedule_webhook = events.record
    # localstripe's own uses of Refund (partial captures, balance
    # transactions) must see and create our refunds.
    resources.Refund = refunds.SandboxRefund
    # localstripe draws ids with one random.choice per character, a large
    # share of a request's time; one random.choices call does the same.
    resources.random_id = _random_id

    _patch_payment_intent()
    _patch_charge()
    _patch_payment_method()


def _random_id(n, alphabet=string.ascii_letters + string.digits):
    return "".join(random.choices(alphabet, k=n))


def _expands(expand, field):
    return any(path == field or path.startswith(field + ".")
               for path in expand or ())


def _patch_payment_intent():
    def _export(self, expand=None):
        data = StripeObject._export(self, expand)
        # localstripe holds the Charge object itself; Stripe sends its id
        # unless expand=["latest_charge"].
        charge = data.get("latest_charge")
        if isinstance(charge, dict) and not _expands(expand, "latest_charge"):
            data["latest_charge"] = charge["id"]
        return data

    original_create_charge = PaymentIntent._create_charge

    def _create_charge(self, on_failure_now):
        try:
            original_create_charge(self, on_failure_now)
        finally:
            # The refund behaviour is read from the charge, which localstripe
            # creates without the PaymentIntent's metadata.
            behavior = self.metadata.get(BEHAVIOR_METADATA_KEY)
            if behavior is not None and self.latest_charge is not None:
                self.latest_charge.metadata[BEHAVIOR_METADATA_KEY] = behavior

    def amount_received(self):
        return self.latest_charge.amount if self.status == "succeeded" else 0

    PaymentIntent._export = _export
    PaymentIntent._create_charge = _create_charge
    PaymentIntent.amount_received = property(amount_received)
    # Removed from the API in 2022-11-15; it exported the charge a 2nd time.
    del PaymentIntent.charges


def _patch_charge():
    def amount_captured(self):
        return self.amount if self.captured and self.paid else 0

    def charge_refunded(self):
        return self.amount > 0 and self.amount_refunded >= self.amount

    def charge_refunds(self):
        return paginate(refunds.refunds_of(self.id), {},
                        f"/v1/charges/{self.id}/refunds")

    def payment_method_details(self):
        method = store.get(f"payment_method:{self.payment_method}")
        if method is None or method.type != "card":
            return None
        card = {key: method.card[key] for key in (
            "brand", "country", "exp_month", "exp_year", "fingerprint",
            "funding", "last4")}
        return {"type": "card", "card": card}

    def billing_details(self):
        # Required on a Charge: the PaymentMethod's, with Stripe's null-filled shape.
        method = store.get(f"payment_method:{self.payment_method}")
        given = getattr(method, "billing_details", None) or {}
        address = given.get("address") or {}
        return {"address": {key: address.get(key) for key in (
                    "city", "country", "line1", "line2", "postal_code",
                    "state")},
                "email": given.get("email"), "name": given.get("name"),
                "phone": given.get("phone"), "tax_id": given.get("tax_id")}

    original_export = Charge._export

    def charge_export(self, expand=None):
        data = original_export(self, expand)
        # `refunds` left the Charge in API version 2022-11-15: only when expanded.
        if not _expands(expand, "refunds"):
            data.pop("refunds", None)
        return data

    Charge._export = charge_export
    Charge.billing_details = property(billing_details)
    Charge.disputed = property(lambda self: disputes.is_disputed(self.id))
    Charge.amount_captured = property(amount_captured)
    Charge.amount_refunded = property(
        lambda self: refunds.amount_refunded(self.id))
    Charge.refunded = property(charge_refunded)
    Charge.refunds = property(charge_refunds)
    Charge.payment_method_details = property(payment_method_details)


def _patch_payment_method():
    original = PaymentMethod._try_get_canonical_test_article

    def _try_get_canonical_test_article(cls, id):
        number = CARD_TEST_PAYMENT_METHODS.get(id)
        if number is None:
            return original(id)
        return cls(type="card", card={"number": number, "exp_month": "12",
                                      "exp_year": "2030", "cvc": "123"})

    PaymentMethod._try_get_canonical_test_article = classmethod(
        _try_get_canonical_test_article)
