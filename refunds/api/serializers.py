"""The API's contract, written once: what a request may carry (and the code each failure answers with)
and what a refund looks like. The OpenAPI schema is generated from these (refunds.api.schema)."""

import datetime
import re
from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from approvals.models import Approval
from refunds.api.fields import (
    CurrencyField,
    DateTimeParamField,
    MetadataField,
    PageField,
    TextField,
    TokenField,
    WholeNumberField,
    literal,
)
from refunds.models import RefundOrigin, RefundRequest, RefundStatus
from refunds.money import MAX_MINOR_AMOUNT, Money
from refunds.providers import default_provider_name, provider_class, provider_names
from refunds.providers.base import LineItem
from refunds.reason_codes import active_reason_codes
from refunds.text import MERCHANT_REFUND_ID, TRANSACTION_ID

MAX_METADATA_KEYS = 20
MAX_ITEMS = 100
MAX_ITEM_QUANTITY = 10_000
TAX_LABEL_PATTERN = r"^[a-z0-9_]{1,16}$"


def _error(message: str, code: str, key: str = api_settings.NON_FIELD_ERRORS_KEY) -> serializers.ValidationError:
    return serializers.ValidationError({key: [serializers.ErrorDetail(message, code=code)]})


class StrictSerializer(serializers.Serializer):
    """A JSON object with exactly the declared fields. Failing: not an object, an unknown field, or
    (for a nested one) missing or null where required."""

    not_object = ("The body must be a JSON object.", "invalid_body")
    # The message for an unknown field, and whether the error sits on that field or on this object.
    unknown = ("Unknown field {name}.", "field")
    unknown_code = "unknown_field"
    missing = ("{field} is required.", "required")

    def validate_empty_values(self, data):
        if self.parent is None and data is None:  # a body of `null`
            raise _error(*self.not_object)
        if (data is None and not self.allow_null) or (data is empty and self.required):
            raise serializers.ValidationError(self.missing[0], code=self.missing[1])
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise _error(*self.not_object)
        extra = sorted(set(data) - set(self.fields))
        if extra:
            name = extra[0]
            message = self.unknown[0].format(name=literal(repr(name)), field="{field}", parent="{parent}")
            raise _error(message, self.unknown_code, **({"key": name} if self.unknown[1] == "field" else {}))
        return super().to_internal_value(data)


class MoneySerializer(StrictSerializer):
    """An amount: minor units (cents) of an ISO 4217 currency."""

    not_object = ('{field} must be an object {{"minor_amount": int, "currency": "USD"}}.', "invalid_type")
    unknown = ("Unknown {field} field {name}.", "self")

    minor_amount = WholeNumberField(
        minimum=1,
        maximum=MAX_MINOR_AMOUNT,
        codes={"too_small": "invalid_amount", "too_large": "invalid_amount"},
        messages={
            "invalid_type": "{field} must be an integer number of minor units.",
            "too_small": "{field} must be positive.",
            "too_large": "{field} is too large.",
        },
    )
    currency = CurrencyField()

    def to_internal_value(self, data):
        return Money(**super().to_internal_value(data))


class RefundItemListSerializer(serializers.ListSerializer):
    max_items = MAX_ITEMS

    def validate_empty_values(self, data):
        if data is None:
            return True, []
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError("{field} must be a non-empty list.", code="invalid_type")
        if len(data) > self.max_items:
            raise serializers.ValidationError(f"{{field}} has at most {self.max_items} entries.", code="too_many_items")
        return super().to_internal_value(data)


class RefundItemSerializer(StrictSerializer):
    """An invoice line refunded."""

    not_object = ("{field} must be an object.", "invalid_type")
    unknown = ("Unknown {parent} field {name}.", "field")

    name = TextField(max_length=128, strip=True, required=True)
    quantity = WholeNumberField(
        minimum=1,
        maximum=MAX_ITEM_QUANTITY,
        default=1,
        codes={"too_small": "invalid_amount", "too_large": "invalid_amount"},
        messages={key: f"{{field}} is a whole number from 1 to {MAX_ITEM_QUANTITY}." for key in
                  ("invalid_type", "too_small", "too_large")},
    )
    cost = MoneySerializer()
    tax = TextField(
        default="none",
        printable=False,
        pattern=re.compile(TAX_LABEL_PATTERN),
        codes={"invalid_type": "invalid_tax", "invalid_format": "invalid_tax"},
        messages={key: "{field} is a tax label such as none or vat20." for key in ("invalid_type", "invalid_format")},
    )

    class Meta:
        list_serializer_class = RefundItemListSerializer

    def validate_empty_values(self, data):
        if data is None:  # a line is never null (the list may be)
            raise _error(*self.not_object)
        return super().validate_empty_values(data)

    def get_fields(self):
        fields = super().get_fields()
        # The labels the enabled providers that take items know; which is right is the service's to say.
        fields["tax"].schema_enum = sorted(
            {rate for name in provider_names() if (cls := provider_class(name)).supports_items for rate in cls.item_tax_rates}
        ) or ["none"]
        return fields

    def to_internal_value(self, data):
        return LineItem(**super().to_internal_value(data))




class RefundCreateSerializer(StrictSerializer):
    """POST /api/refunds/: what filing a refund takes. Fields are checked in this order; the first
    failure is the answer."""

    merchant_refund_id = TextField(
        required=True,
        max_length=64,
        pattern=MERCHANT_REFUND_ID,
        messages={"invalid_format": "{field} is 1-64 characters of letters, digits and . _ : -"},
    )
    provider = TextField(
        max_length=32,
        default=default_provider_name,
        null_is_absent=True,
        choices=provider_names,
        codes={"invalid_choice": "unknown_provider"},
        messages={"invalid_choice": "{field} must be one of {choices}."},
    )
    connector_transaction_id = TextField(
        required=True,
        max_length=255,
        pattern=TRANSACTION_ID,
        messages={"invalid_format": "{field} is letters, digits, _ and -."},
    )
    amount = MoneySerializer(required=False, allow_null=True, default=None)
    reason = TextField(max_length=500, default="", null_is_absent=True)
    reason_code = TextField(
        default="",
        null_is_absent=True,
        allow_blank=True,
        printable=False,
        choices=active_reason_codes,
        codes={"invalid_choice": "unknown_reason_code"},
        help_text="An active reason code (admin › Reason codes).",
    )
    metadata = MetadataField(max_keys=MAX_METADATA_KEYS, default=dict)  # null reads as {}
    product = TextField(max_length=200, default="", null_is_absent=True)
    items = RefundItemSerializer(  # null reads as []
        many=True,
        required=False,
        default=list,
        help_text="Invoice lines refunded (providers that take them; `items_not_supported` otherwise). Their costs "
        "times quantities add up to `amount` (`items_mismatch`); without an amount, their total is the amount.",
    )
    dispute_override_reason = TextField(
        max_length=500,
        default="",
        null_is_absent=True,
        help_text="Why to refund although the payment has an open dispute (some disputes are settled by refunding). "
        "Without it such a refund is refused (422 `payment_disputed`); only finance managers may give it (403 "
        "`permission_denied` otherwise). Logged with the refund.",
    )

    def get_fields(self):
        fields = super().get_fields()
        patterns = [
            provider_class(name).transaction_id_pattern.removeprefix("^").removesuffix("$") for name in provider_names()
        ]
        if patterns:
            # Each provider's own pattern applies when it is chosen (refunds.api.schema adds the rules).
            fields["connector_transaction_id"].schema_pattern = "^(?:" + "|".join(f"(?:{p})" for p in patterns) + ")$"
        return fields

    def validate_connector_transaction_id(self, value: str) -> str:
        provider = self.initial_data.get("provider") or default_provider_name()
        if provider in provider_names():  # else the provider's own error comes first
            problem = provider_class(provider).validate_transaction_id(value)
            if problem:
                raise serializers.ValidationError(literal(problem), code="invalid_format")
        return value


class DecisionSerializer(StrictSerializer):
    """POST .../approve/ and .../reject/: an optional comment (a rejection needs one: the service says)."""

    comment = TextField(
        max_length=1000,
        default="",
        printable=False,
        codes={"invalid_type": "invalid", "too_long": "invalid"},
        messages={key: "{field} must be a string of at most 1000 characters." for key in ("invalid_type", "too_long")},
    )


class SecondFactorSerializer(StrictSerializer):
    """POST /api/second-factor/: the code the token's user's authenticator shows now."""

    code = TextField(max_length=10, pattern=re.compile(r"^[0-9]{6,8}$"), codes={"invalid_format": "invalid"},
                     messages={"invalid_format": "{field} is the 6-digit code your authenticator shows."})


class SecondFactorResultSerializer(serializers.Serializer):
    verified_until = serializers.DateTimeField(help_text="Decisions through this token need no new code until then.")


class RefundListParamsSerializer(StrictSerializer):
    """GET /api/refunds/: the query parameters. An unknown one is an error: a typo such as ?stauts=
    would otherwise silently return everything."""

    unknown = ("Unknown query parameter {name}.", "field")
    unknown_code = "unknown_parameter"

    status = TextField(
        required=False, choices=lambda: RefundStatus.values, codes={"invalid_choice": "invalid"},
        messages={"invalid_choice": "Unknown status {value}."},
    )
    provider = TextField(required=False, allow_blank=True)
    currency = TextField(required=False, allow_blank=True)
    product = TextField(required=False, allow_blank=True)
    connector_transaction_id = TextField(required=False, allow_blank=True)
    created_after = DateTimeParamField(required=False)
    created_before = DateTimeParamField(required=False)
    page = PageField(required=False)
    mine = TokenField(required=False, values={"1": True, "true": True, "0": False, "false": False})

    def validate_currency(self, value: str) -> str:
        return value.upper()


# --- What the API answers ----------------------------------------------------------------------


class ApprovalSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Approval.Decision.choices, read_only=True)
    approver = serializers.SerializerMethodField()
    comment = serializers.CharField(read_only=True)
    tier = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True, default_timezone=datetime.timezone.utc)

    def get_approver(self, approval: Approval) -> str | None:
        return approval.approver.get_username() if approval.approver else None


class RefundFailureSerializer(serializers.Serializer):
    code = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)


class RefundSerializer(serializers.Serializer):
    """A refund as the API shows it. Needs `requested_by` and `approvals__approver` loaded."""

    merchant_refund_id = serializers.CharField(read_only=True)
    provider = serializers.CharField(read_only=True)
    connector_transaction_id = serializers.CharField(read_only=True)
    connector_refund_id = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=RefundStatus.choices, read_only=True)
    amount = serializers.SerializerMethodField()
    reason = serializers.CharField(read_only=True)
    reason_code = serializers.CharField(source="reason_code_id", read_only=True, allow_null=True)
    metadata = serializers.DictField(read_only=True)
    product = serializers.CharField(read_only=True)
    items = serializers.SerializerMethodField()
    requested_by = serializers.SerializerMethodField()
    origin = serializers.ChoiceField(choices=RefundOrigin.choices, read_only=True)
    created_at = serializers.DateTimeField(read_only=True, default_timezone=datetime.timezone.utc)
    resolved_at = serializers.DateTimeField(read_only=True, allow_null=True, default_timezone=datetime.timezone.utc)
    approvals = ApprovalSerializer(many=True, read_only=True)
    error = serializers.SerializerMethodField()
    disputed_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        default_timezone=datetime.timezone.utc,
        help_text="When a dispute opened on the payment after this refund succeeded (refunded and disputed: the "
        "money is at risk twice); null otherwise.",
    )

    def get_connector_refund_id(self, refund: RefundRequest) -> str | None:
        return refund.connector_refund_id or None

    @extend_schema_field(MoneySerializer)
    def get_amount(self, refund: RefundRequest) -> dict:
        return {"minor_amount": refund.amount_minor, "currency": refund.currency}

    @extend_schema_field(RefundItemSerializer(many=True))
    def get_items(self, refund: RefundRequest) -> list:
        return refund.items  # as filed: the lines the provider was (or will be) told

    def get_requested_by(self, refund: RefundRequest) -> str | None:
        return refund.requested_by.get_username() if refund.requested_by else None

    @extend_schema_field(RefundFailureSerializer(allow_null=True))
    def get_error(self, refund: RefundRequest) -> dict | None:
        return {"code": refund.error_code, "message": refund.error_message} if refund.error_code else None


# RefundSerializer keeps nothing between calls (no context, no request; its fields read the
# refund only), so one instance per process shows every refund: a new one per answer rebuilt its
# fields (a deep copy of every declared field), which was most of what showing a refund cost.
_REFUND_SHOWN = RefundSerializer()


def refund_shown(refund: RefundRequest) -> dict:
    """The refund as the API answers with it: RefundSerializer(refund).data, as a plain dict."""
    return _REFUND_SHOWN.to_representation(refund)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(read_only=True, help_text="Machine-readable: what went wrong.")
    message = serializers.CharField(read_only=True)
    field = serializers.CharField(read_only=True, allow_null=True, help_text="Where: a path such as `items[0].cost`.")


class ErrorSerializer(serializers.Serializer):
    """Every error the API answers with."""

    error = ErrorDetailSerializer(read_only=True)
