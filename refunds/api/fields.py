"""Serializer fields that fail the way the API documents: one machine-readable code per failure, and a
message that names the field by its path. `{field}` (the failing field's path, e.g. `items[0].cost`)
and `{parent}` (the path of the object holding it) are filled in by refunds.api.errors, which alone
knows where in the body the field sits. Each field also carries the constraints its schema shows
(refunds.api.schema reads them), so a rule is written once."""

import datetime
import re
from collections.abc import Callable, Iterable

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.fields import empty

from refunds.money import CURRENCY_EXPONENTS, is_known_currency
from refunds.text import PRINTABLE_NOT_BLANK_PATTERN, PRINTABLE_PATTERN, UNSTORABLE, is_printable


def literal(text: str) -> str:
    """`text` (which may come from the caller) inside a message template, braces and all."""
    return text.replace("{", "{{").replace("}", "}}")


class ApiField(serializers.Field):
    """A field whose failures carry the API's codes. `codes` renames a failure's key to the code the
    API answers with (the key itself otherwise); `messages` replaces templates."""

    def __init__(self, *, codes: dict | None = None, messages: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.codes = codes or {}
        self.error_messages.update(messages or {})

    def reject(self, failure: str, /, **kwargs):
        template = self.error_messages[failure].format(field="{field}", parent="{parent}", **kwargs)
        raise serializers.ValidationError(template, code=self.codes.get(failure, failure))

    def get_value(self, dictionary):
        # A query string's "" is a value like any other (DRF's form handling would read it as absent).
        return dictionary.get(self.field_name, empty)

    def to_representation(self, value):
        return value


class TextField(ApiField):
    """A JSON string: never a number made into one, never trimmed (unless `strip`)."""

    default_error_messages = {
        "required": "{field} is required.",
        "invalid_type": "{field} must be a string.",
        "too_long": "{field} is at most {max_length} characters.",
        "invalid_characters": "{field} contains control characters.",
        "invalid_format": "{field} is not well formed.",
        "invalid_choice": "{field} is one of {choices}.",
    }

    def __init__(
        self,
        *,
        max_length: int | None = None,
        pattern: re.Pattern | None = None,
        printable: bool = True,
        strip: bool = False,
        allow_blank: bool = False,
        null_is_absent: bool = False,
        choices: Callable[[], list[str]] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.pattern = pattern
        self.printable = printable
        self.strip = strip
        self.allow_blank = allow_blank  # "" is valid, whatever `choices` says
        # null reads as absent (the default); tolerated, not advertised in the schema.
        self.null_is_absent = null_is_absent
        self.choices = choices  # a callable: which values are valid can change with settings
        # For the schema: a pattern narrower than `pattern`, known only when the request comes.
        self.schema_pattern: str | None = None
        # For the schema: the values a later check (a service's) accepts, when that list is known.
        self.schema_enum: list[str] | None = None

    def run_validation(self, data=empty):
        if data is empty or (data is None and self.null_is_absent):
            if self.required:
                self.reject("required")
            return self.get_default()
        if not isinstance(data, str):
            self.reject("required" if data is None and self.required else "invalid_type")
        if self.required and not data.strip():
            self.reject("required")
        if self.allow_blank and data == "":
            return data
        if self.max_length is not None and len(data) > self.max_length:
            self.reject("too_long", max_length=self.max_length)
        if (self.printable and not is_printable(data)) or UNSTORABLE.search(data):
            # Even free text holds no NUL or lone surrogate: no database stores them.
            self.reject("invalid_characters")
        if self.pattern is not None and not self.pattern.match(data):
            self.reject("invalid_format")
        if self.choices is not None and data not in self.choices():
            self.reject("invalid_choice", value=literal(repr(data)), choices=", ".join(self.choices()) or "(none enabled)")
        return data.strip() if self.strip else data

    def json_schema(self) -> dict:
        schema = {"type": "string"}
        if self.required:
            schema["minLength"] = 1
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.schema_pattern is not None:
            schema["pattern"] = self.schema_pattern
        elif self.pattern is not None:
            schema["pattern"] = self.pattern.pattern
        elif self.printable:
            schema["pattern"] = PRINTABLE_NOT_BLANK_PATTERN if self.required else PRINTABLE_PATTERN
        else:
            schema["pattern"] = "^[^\u0000]*$"
        if self.choices is not None:
            schema["enum"] = list(self.choices()) + ([""] if self.allow_blank else [])
        elif self.schema_enum is not None:
            schema["enum"] = list(self.schema_enum)
        if "enum" in schema and self.allow_null:
            schema["enum"].append(None)
        return schema


class WholeNumberField(ApiField):
    """A JSON integer (1500.0 is the integer 1500: JSON has one number type), never a bool or a string."""

    default_error_messages = {
        "invalid_type": "{field} must be a whole number.",
        "too_small": "{field} is at least {minimum}.",
        "too_large": "{field} is at most {maximum}.",
    }

    def __init__(self, *, minimum: int, maximum: int, **kwargs):
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def run_validation(self, data=empty):
        if data is empty and not self.required:
            return self.get_default()
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.reject("invalid_type")
        if data < self.minimum:
            self.reject("too_small", minimum=self.minimum)
        if data > self.maximum:
            self.reject("too_large", maximum=self.maximum)
        return data

    def json_schema(self) -> dict:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


class CurrencyField(ApiField):
    """An ISO 4217 code this office knows, in any case; upper case once read."""

    default_error_messages = {"invalid_currency": "{field} must be a known ISO 4217 code such as USD."}

    def run_validation(self, data=empty):
        if not isinstance(data, str) or not is_known_currency(data.upper()):
            self.reject("invalid_currency")
        return data.upper()

    def json_schema(self) -> dict:
        return {"type": "string", "enum": sorted(CURRENCY_EXPONENTS)}


class MetadataField(ApiField):
    """Free-form labels: up to `max_keys` printable keys, each a string or a number (kept as text)."""

    default_error_messages = {
        "invalid_type": "{field} must be an object.",
        "too_many_metadata_keys": "{field} has at most {max_keys} keys.",
        "invalid_key": "{field} keys are 1 to 40 printable characters.",
        "invalid_value": "{field}[{key}] must be a string or a number.",
        "value_too_long": "{field}[{key}] is at most 500 printable characters.",
    }
    codes = {"invalid_key": "invalid_metadata", "invalid_value": "invalid_metadata", "value_too_long": "invalid_metadata"}

    def __init__(self, *, max_keys: int, **kwargs):
        super().__init__(codes=self.codes, **kwargs)
        self.max_keys = max_keys

    def run_validation(self, data=empty):
        if data is empty or data is None:
            return {}
        if not isinstance(data, dict):
            self.reject("invalid_type")
        if len(data) > self.max_keys:
            self.reject("too_many_metadata_keys", max_keys=self.max_keys)
        clean = {}
        for key, item in data.items():
            if not (1 <= len(key) <= 40) or not is_printable(key):
                self.reject("invalid_key")
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.reject("invalid_value", key=literal(repr(key)))
            text = str(item)
            if len(text) > 500 or not is_printable(text):
                self.reject("value_too_long", key=literal(repr(key)))
            clean[key] = text
        return clean

    def json_schema(self) -> dict:
        return {
            "type": "object",
            "maxProperties": self.max_keys,
            "propertyNames": {"minLength": 1, "maxLength": 40, "pattern": PRINTABLE_PATTERN},
            "additionalProperties": {
                "oneOf": [{"type": "string", "maxLength": 500, "pattern": PRINTABLE_PATTERN}, {"type": "number"}]
            },
        }


class DateTimeParamField(ApiField):
    """An ISO 8601 date-time, read in UTC (the database takes no offsets beyond ±16 hours); naive is UTC."""

    default_error_messages = {"invalid": "{field} must be an ISO 8601 date-time."}

    def run_validation(self, data=empty):
        if data is empty:
            return self.get_default()
        try:
            moment = parse_datetime(data) if isinstance(data, str) else None
        except ValueError:  # well-formed but impossible, e.g. month 13
            moment = None
        try:
            if moment is not None and timezone.is_naive(moment):
                moment = timezone.make_aware(moment, datetime.timezone.utc)
            moment = moment.astimezone(datetime.timezone.utc) if moment else None
        except OverflowError:
            moment = None
        if moment is None:
            self.reject("invalid")
        return moment

    def json_schema(self) -> dict:
        return {"type": "string", "format": "date-time"}


class TokenField(ApiField):
    """One of a few spellings, each read as a value: {"1": True, "0": False}."""

    default_error_messages = {"invalid": "{field} is {spellings}."}

    def __init__(self, *, values: dict, **kwargs):
        super().__init__(**kwargs)
        self.values = values

    def run_validation(self, data=empty):
        if data is empty:
            return self.get_default()
        if data not in self.values:
            spellings = list(self.values)
            self.reject("invalid", spellings=", ".join(spellings[:-1]) + " or " + spellings[-1])
        return self.values[data]

    def json_schema(self) -> dict:
        return {"type": "string", "enum": list(self.values)}


class PageField(ApiField):
    """A page number as a query string carries it: ASCII digits, from 1."""

    default_error_messages = {"invalid": "{field} is a whole number from 1."}

    def run_validation(self, data=empty):
        if data is empty:
            return self.get_default()
        # At most 18 digits: int() refuses past 4,300 (a ValueError, a 500 before this check), and
        # no list has that many pages. DRF reads an empty page as the first: say what is wrong instead.
        if not (isinstance(data, str) and data.isascii() and data.isdigit() and len(data) <= 18 and int(data) >= 1):
            self.reject("invalid")
        return int(data)

    def json_schema(self) -> dict:
        return {"type": "integer", "minimum": 1}


def api_fields() -> Iterable[type[ApiField]]:
    return (TextField, WholeNumberField, CurrencyField, MetadataField, DateTimeParamField, TokenField, PageField)
