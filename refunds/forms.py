"""Forms of the support pages. They parse and validate input; filing is the service's job."""

import uuid
from decimal import Decimal, InvalidOperation

from django import forms

from refunds.models import ReasonCode
from refunds.money import decimal_to_minor
from refunds.providers import provider_names
from refunds.validation import MERCHANT_REFUND_ID, TRANSACTION_ID


def _provider_choices():
    return [(name, name.capitalize()) for name in provider_names()]


class PaymentLookupForm(forms.Form):
    provider = forms.ChoiceField(choices=_provider_choices, initial="stripe")
    connector_transaction_id = forms.CharField(
        label="Transaction id", max_length=255, help_text="The payment at the provider, e.g. pi_… or ch_… for Stripe."
    )

    def clean_connector_transaction_id(self):
        value = self.cleaned_data["connector_transaction_id"].strip()
        if not TRANSACTION_ID.match(value):
            raise forms.ValidationError("Letters, digits, _ and - only.")
        return value


class RefundForm(forms.Form):
    FULL, PARTIAL = "full", "partial"

    # Made when the form is shown, so a double submit files the same refund once.
    merchant_refund_id = forms.CharField(widget=forms.HiddenInput, max_length=64)
    provider = forms.ChoiceField(choices=_provider_choices, widget=forms.HiddenInput)
    connector_transaction_id = forms.CharField(widget=forms.HiddenInput, max_length=255)
    kind = forms.ChoiceField(
        label="Refund",
        choices=[(FULL, "Everything still refundable"), (PARTIAL, "Part of it")],
        widget=forms.RadioSelect,
        initial=FULL,
    )
    amount = forms.CharField(label="Amount", required=False, max_length=20, help_text="In the payment's currency, e.g. 12.50")
    reason_code = forms.ModelChoiceField(
        label="Reason code", queryset=ReasonCode.objects.filter(active=True), to_field_name="code",
        empty_label="Choose…",
    )
    reason = forms.CharField(label="Note", max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    product = forms.CharField(label="Product", max_length=200, required=False)

    def __init__(self, *args, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency

    @staticmethod
    def new_merchant_refund_id() -> str:
        return f"web-{uuid.uuid4().hex[:20]}"

    def clean_merchant_refund_id(self):
        value = self.cleaned_data["merchant_refund_id"]
        if not MERCHANT_REFUND_ID.match(value):
            raise forms.ValidationError("The form has expired; open it again.")
        return value

    def clean(self):
        data = super().clean()
        if data.get("kind") == self.PARTIAL:
            raw = (data.get("amount") or "").strip().replace(",", "")
            try:
                value = Decimal(raw)
                if not value.is_finite() or value <= 0:
                    raise InvalidOperation
                data["amount_minor"] = decimal_to_minor(value, self.currency)
            except InvalidOperation:
                self.add_error("amount", f"Enter an amount in {self.currency} greater than zero, e.g. 12.50.")
            except ValueError as error:
                self.add_error("amount", str(error))
        else:
            data["amount_minor"] = None
        return data
