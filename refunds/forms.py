"""Forms of the support pages. They parse and validate input; filing is the service's job."""

import uuid

from django import forms
from django.forms.utils import ErrorList

from refunds.models import ReasonCode
from refunds.money import Money, MoneyParseError, format_minor, money_parse
from refunds.providers import default_provider_name, provider_label, provider_names
from refunds.providers.base import LineItem
from refunds.text import MERCHANT_REFUND_ID, TRANSACTION_ID


def _provider_choices():
    return [(name, provider_label(name)) for name in provider_names()]


class PaymentLookupForm(forms.Form):
    provider = forms.ChoiceField(choices=_provider_choices, initial=default_provider_name)
    connector_transaction_id = forms.CharField(
        label="Transaction id",
        max_length=255,
        help_text="The payment at the provider: pi_… or ch_… for Stripe, the InvoiceID (a number) for Robokassa.",
    )

    def clean_connector_transaction_id(self):
        value = self.cleaned_data["connector_transaction_id"].strip()
        if not TRANSACTION_ID.match(value):
            raise forms.ValidationError("Letters, digits, _ and - only.")
        return value


def _tax_label(rate: str) -> str:
    """vat20 → VAT 20%, vat120 → VAT 20/120, none → No VAT; other labels as they are."""
    if rate == "none":
        return "No VAT"
    digits = rate.removeprefix("vat")
    if not rate.startswith("vat") or not digits.isdigit():
        return rate
    if len(digits) == 3:  # a calculated rate: 10/110, 20/120, 5/105, 7/107
        return f"VAT {int(digits) - 100}/{digits}"
    return f"VAT {digits}%"


class RefundItemForm(forms.Form):
    """One invoice line; a row left blank is no line."""

    name = forms.CharField(label="Item", max_length=128, required=False)
    quantity = forms.IntegerField(
        label="Quantity", min_value=1, max_value=100_000, required=False, widget=forms.TextInput
    )
    cost = forms.CharField(label="Price each", max_length=40, required=False)
    tax = forms.ChoiceField(label="Tax", required=False)

    def __init__(self, *args, currency: str, tax_rates: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["tax"].choices = [(rate, _tax_label(rate)) for rate in tax_rates]
        self.fields["cost"].label = f"Price each ({currency})"
        self.fields["quantity"].widget.attrs["inputmode"] = "numeric"
        self.fields["cost"].widget.attrs["inputmode"] = "decimal"
        # The rows are a table: each input says which row and column it is.
        row = int(self.prefix.rsplit("-", 1)[-1]) + 1 if self.prefix and self.prefix[-1].isdigit() else ""
        for name, field in self.fields.items():
            field.widget.attrs["aria-label"] = f"{field.label}, row {row}"

    def clean(self):
        data = super().clean()
        data["line"] = None
        name, quantity = (data.get("name") or "").strip(), data.get("quantity")
        cost = (data.get("cost") or "").strip()
        if not (name or cost or quantity is not None or self.errors):
            return data  # a blank row
        if not name:
            self.add_error("name", "Name the item.")
        if quantity is None and "quantity" not in self.errors:
            self.add_error("quantity", "How many? 1 or more.")
        try:
            cost_minor = money_parse(cost, currency=self.currency)  # in the active language's notation
        except MoneyParseError as error:
            self.add_error("cost", str(error))
            return data
        if not self.errors:
            data["line"] = LineItem(name, quantity, Money(cost_minor, self.currency), data.get("tax") or "none")
        return data


class BaseRefundItemFormSet(forms.BaseFormSet):
    def lines(self) -> list[LineItem]:
        return [form.cleaned_data["line"] for form in self.forms if form.cleaned_data.get("line")]


RefundItemFormSet = forms.formset_factory(
    RefundItemForm, formset=BaseRefundItemFormSet, extra=0, max_num=20, validate_max=True, absolute_max=20
)
ITEM_ROWS = 3  # rows shown at first; "Add a row" adds one more (no JavaScript needed)
ITEMS_PREFIX = "items"


class RefundForm(forms.Form):
    FULL, PARTIAL = "full", "partial"
    refusal = ""  # why the confirmed refund was not filed (the form is shown again as typed)

    # Made when the form is shown, so a double submit files the same refund once.
    merchant_refund_id = forms.CharField(widget=forms.HiddenInput, max_length=64)
    provider = forms.ChoiceField(choices=_provider_choices, widget=forms.HiddenInput)
    connector_transaction_id = forms.CharField(widget=forms.HiddenInput, max_length=255)
    # No default: a typed amount silently ignored under a pre-ticked "everything" refunded the
    # whole payment. Both chosen ("everything" and an amount) is an error, never a guess.
    kind = forms.ChoiceField(
        label="Refund",
        choices=[(FULL, "Everything still refundable"), (PARTIAL, "Part of it: the amount below")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose one: everything still refundable, or part of it (then enter the amount)."},
    )
    amount = forms.CharField(
        label="Amount", required=False, max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "aria-describedby": "amount-help"}),
    )
    reason_code = forms.ModelChoiceField(
        label="Reason code", queryset=ReasonCode.objects.filter(active=True), to_field_name="code",
        empty_label="Choose…",
    )
    reason = forms.CharField(label="Note", max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    product = forms.CharField(label="Product", max_length=200, required=False)

    def __init__(
        self,
        data=None,
        *,
        currency: str,
        item_tax_rates: tuple[str, ...] | None = None,
        refundable: int | None = None,
        item_rows: list[dict] | None = None,
        dispute: str = "",
        may_override_dispute: bool = False,
        **kwargs,
    ):
        """`item_tax_rates`: the provider takes invoice items with these rates (None: no items).
        `refundable`: what a full refund would be, for checking the items against it.
        `item_rows`: rows to show in an unbound form (an "Add a row" round trip)."""
        super().__init__(data, **kwargs)
        # `dispute`: the payment's open dispute as people read it ("" when none). Refused unless
        # `may_override_dispute` (a finance manager) and a reason is given.
        self.dispute = dispute
        self.may_override_dispute = may_override_dispute
        if dispute and may_override_dispute:
            self.fields["dispute_override_reason"] = forms.CharField(
                label="Why refund despite the dispute", max_length=500, required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
                help_text="Some disputes are settled by refunding. Your reason is logged with the refund.",
            )
        self.currency = currency
        self.refundable = refundable
        self.items = None
        self.items_errors = ErrorList()
        if item_tax_rates is not None:
            form_kwargs = {"currency": currency, "tax_rates": item_tax_rates}
            if data is not None:
                self.items = RefundItemFormSet(data, prefix=ITEMS_PREFIX, form_kwargs=form_kwargs)
            else:
                rows = list(item_rows or []) + [{}] * max(ITEM_ROWS - len(item_rows or []), 0)
                self.items = RefundItemFormSet(initial=rows, prefix=ITEMS_PREFIX, form_kwargs=form_kwargs)

    @classmethod
    def posted_item_rows(cls, data, *, extra: bool = True) -> list[dict]:
        """The item rows of a POST as initial data, plus an empty one with `extra` ("Add a row")."""
        try:
            count = min(int(data.get(f"{ITEMS_PREFIX}-TOTAL_FORMS", 0)), RefundItemFormSet.max_num - 1)
        except ValueError:
            count = 0
        fields = ("name", "quantity", "cost", "tax")
        rows = [{f: data.get(f"{ITEMS_PREFIX}-{i}-{f}", "") for f in fields} for i in range(max(count, 0))]
        return [*rows, {}] if extra else rows

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
        data["dispute_override_reason"] = (data.get("dispute_override_reason") or "").strip()
        if self.dispute and not data["dispute_override_reason"]:
            message = (f"This payment has an open dispute {self.dispute}: a refund now could pay the customer "
                       "twice, so it is not filed.")
            if self.may_override_dispute:
                message += " To refund anyway (some disputes are settled by refunding), say why below."
            else:
                message += " A finance manager can decide whether to refund it anyway."
            self.add_error(None, forms.ValidationError(message, code="payment_disputed"))
        typed = (data.get("amount") or "").strip()
        data["amount_minor"] = None
        if data.get("kind") == self.PARTIAL:
            try:
                data["amount_minor"] = money_parse(typed, currency=self.currency)  # the active language's notation
            except MoneyParseError as error:
                self.add_error("amount", str(error))
            else:
                self._check_refundable(data["amount_minor"])
        elif data.get("kind") == self.FULL and self.refundable is not None and self.refundable <= 0:
            self.add_error("kind", "Nothing remains refundable on this payment.")
        elif data.get("kind") == self.FULL and typed:
            try:
                understood = format_minor(money_parse(typed, currency=self.currency), self.currency)
                part = f"to refund {understood}, choose “Part of it”"
            except MoneyParseError:
                understood, part = f"“{typed}”", "for part of it, choose “Part of it” and enter the amount"
            self.add_error(
                "amount",
                f"You chose “Everything still refundable” and also entered {understood}. To refund everything, "
                f"clear the amount; {part}.",
            )
        return data

    def _check_refundable(self, amount_minor: int) -> None:
        """Said before the confirmation page; intake checks again when the refund is filed."""
        if self.refundable is not None and amount_minor > self.refundable:
            self.add_error(
                "amount",
                f"{format_minor(amount_minor, self.currency)} exceeds what remains refundable on the payment "
                f"({format_minor(self.refundable, self.currency)}).",
            )

    def is_valid(self) -> bool:
        valid = super().is_valid()
        if self.items is None:
            return valid
        if not self.items.is_valid():
            return False
        lines = self.items.lines()
        self.cleaned_data["items"] = lines
        if valid and lines:
            self._check_items_add_up(lines)
        return valid and not self.items_errors

    def _check_items_add_up(self, lines: list[LineItem]) -> None:
        total = sum(line.total_minor for line in lines)
        wanted = self.cleaned_data["amount_minor"]
        what = "the amount"
        if wanted is None:
            wanted, what = self.refundable, "what is refundable now"
        if wanted is not None and total != wanted:
            self.items_errors.append(
                f"The items add up to {format_minor(total, self.currency)}, not {what} "
                f"({format_minor(wanted, self.currency)}). Change the items or the amount."
            )
