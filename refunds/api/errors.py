"""Every error the API answers with is {"error": {"code", "message", "field"}}: domain errors from the
services, a serializer's first failure (with the path of the field), and DRF's own."""

import re

from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from refunds import errors
from refunds.api.parsers import JsonTooDeep

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    JsonTooDeep: "json_too_deep",
    exceptions.ParseError: "malformed_json",
    exceptions.Throttled: "throttled",
}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{field\}|\{parent\}")


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def first_failure(detail, path: str | None = None) -> tuple[str | None, exceptions.ErrorDetail] | None:
    """The first failure in a serializer's errors, in field order, with its path: `amount.currency`,
    `items[2].name`; errors on an object itself sit at the object's path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                here = path
            elif isinstance(key, int):  # a list's errors, by index
                here = f"{path}[{key}]"
            else:
                here = f"{path}.{key}" if path else key
            found = first_failure(value, here)
            if found:
                return found
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            found = first_failure(value, f"{path}[{index}]") if isinstance(value, (dict, list)) else (path, value)
            if found:
                return found
    elif detail:
        return path, detail
    return None


def _render(template: str, path: str | None) -> str:
    """Fill in a field message's {field} and {parent} (see refunds.api.fields)."""
    field = path or "body"
    parent = field[: max(field.rfind("."), 0)] or field
    values = {"{{": "{", "}}": "}", "{field}": field, "{parent}": parent}
    return _PLACEHOLDER.sub(lambda match: values[match.group()], template)


def exception_handler(exc, context):
    if isinstance(exc, errors.RefundError):
        return Response(error_body(exc.code, exc.message, exc.field), status=exc.http_status)
    if isinstance(exc, exceptions.ValidationError):
        path, detail = first_failure(exc.detail) or (None, exceptions.ErrorDetail("Invalid input.", code="invalid"))
        return Response(error_body(detail.code, _render(str(detail), path), path), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "invalid")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    response.data = error_body(code, str(message))
    return response
