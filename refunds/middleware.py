"""Text from outside is checked once, before any view, form or query sees it: the path, every
query parameter and every posted form field (names and values). NUL and the other control
characters, which PostgreSQL refuses or no person types, are a 400 here, so no converter, admin
filter, form or lookup has to guard against them itself; so are date-times whose offset takes
them outside Python's calendar, and (in the admin) integers beyond 64 bits. JSON bodies are
checked by the API's fields (refunds.api.fields.TextField) and the webhook adapters, which know
their shapes."""

from __future__ import annotations

import datetime
import re

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpResponse, JsonResponse
from django.utils.dateparse import parse_datetime

from refunds.api.errors import error_body

# C0 and C1 control characters and lone surrogates. Tab, line feed and carriage return stay:
# a browser posts a textarea's lines as CRLF.
UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_INTEGER = re.compile(r"\s*[-+]?[0-9]{19,}\s*$")
_DATETIME_START = re.compile(r"\s*\d{4}-\d\d-\d\d[T ]")
# Where refundoffice/urls.py mounts the admin.
ADMIN_PREFIX = "/admin/"
# These answer machines, in the API's error shape.
_JSON_PREFIXES = ("/api/", "/webhooks/")


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _check(where: str, items, *, admin: bool) -> None:
    for name, value in items:
        if UNSAFE_TEXT.search(name) or UNSAFE_TEXT.search(value):
            raise Refusal(400, "invalid_characters", f"A {where} contains control characters.", field=name[:100])
        if admin and name != "q" and _INTEGER.match(value) and not _fits_64_bits(value):
            # The admin (ours and the packages') turns filter values, selected rows and edited
            # row ids into integer lookups and years without a range check: the driver (SQLite)
            # or C (a date hierarchy's year) overflows. No column holds such a number. Our own
            # forms parse their numbers and say what is wrong; the search box is text.
            raise Refusal(400, "number_out_of_range", f"A {where} is a number beyond 64 bits.", field=name[:100])
        if _DATETIME_START.match(value) and not _storable_datetime(value):
            raise Refusal(400, "invalid_datetime", f"A {where} is a date-time no calendar holds.", field=name[:100])


def _fits_64_bits(digits: str) -> bool:
    digits = digits.strip()
    # Checked by length first: int() refuses texts over 4,300 digits (ValueError).
    return len(digits.lstrip("+-").lstrip("0")) <= 19 and -(2**63) <= int(digits) < 2**63


def _storable_datetime(value: str) -> bool:
    """False for a date-time with an offset that takes it past year 9999 or before year 1 in UTC
    (9999-12-31T23:00-05:00), which any date-time filter (the admin's too) would fail to convert."""
    try:
        moment = parse_datetime(value.strip())
    except ValueError:
        return True  # not a date-time (month 13): the field's own parsing refuses it
    if moment is None or moment.tzinfo is None:
        return True
    try:
        moment.astimezone(datetime.timezone.utc)
    except OverflowError:
        return False
    return True


def check_request_text(request) -> None:
    """Raise Refusal when the request's path, query or form carries text no field may hold."""
    if UNSAFE_TEXT.search(request.path_info):
        raise Refusal(400, "invalid_characters", "The address contains control characters.")
    admin = request.path_info.startswith(ADMIN_PREFIX)
    try:
        _check("query parameter", ((k, v) for k, vs in request.GET.lists() for v in vs), admin=admin)
        if request.method == "POST" and request.content_type in _FORM_TYPES:
            _check("form field", ((k, v) for k, vs in request.POST.lists() for v in vs), admin=admin)
            _check("file name", ((k, f.name or "") for k, fs in request.FILES.lists() for f in fs), admin=admin)
    except RequestDataTooBig:
        raise Refusal(413, "payload_too_large", "The request body is too large.") from None
    except TooManyFieldsSent:
        raise Refusal(400, "too_many_fields", "The request has too many fields.") from None
    # The admin reads an empty `_to_field` as a field named "" (FieldDoesNotExist, a 500).
    if request.GET.get("_to_field") == "" or request.POST.get("_to_field") == "":
        raise Refusal(400, "invalid_parameter", "_to_field names no field.", field="_to_field")


class HostileTextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            check_request_text(request)
        except Refusal as refusal:
            if request.path_info.startswith(_JSON_PREFIXES):
                return JsonResponse(error_body(refusal.code, refusal.message, refusal.field), status=refusal.status)
            return HttpResponse(
                f"Bad request: {refusal.message}", status=refusal.status, content_type="text/plain; charset=utf-8"
            )
        return self.get_response(request)
