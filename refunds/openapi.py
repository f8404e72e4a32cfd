"""The API's OpenAPI 3.1 description, served at /api/schema/. The test suite runs schemathesis
against it: every response must be documented, and no input may cause a 5xx."""

import copy

from django.http import JsonResponse

from refunds.models import RefundStatus
from refunds.money import CURRENCY_EXPONENTS, MAX_MINOR_AMOUNT
from refunds.providers import provider_class, provider_names
from refunds.reason_codes import active_reason_codes
from refunds.validation import MAX_ITEM_QUANTITY, MAX_ITEMS, MAX_METADATA_KEYS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _refund_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refund"}}}}


_MONEY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["minor_amount", "currency"],
    "properties": {
        "minor_amount": {"type": "integer", "minimum": 1, "maximum": MAX_MINOR_AMOUNT},
        "currency": {"type": "string", "enum": sorted(CURRENCY_EXPONENTS)},
    },
}

# Printable text: no C0/C1 control characters except tab and newline.
_PRINTABLE = "^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$"
_MERCHANT_REFUND_ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$", "maxLength": 64}

_ITEM = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "cost"],
    "properties": {
        # Printable, and not blank: a line needs a name someone can read.
        "name": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^(?=[\\s\\S]*\\S)" + _PRINTABLE[1:]},
        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_ITEM_QUANTITY, "default": 1},
        "cost": {"$ref": "#/components/schemas/Money"},
        "tax": {"type": "string", "pattern": "^[a-z0-9_]{1,16}$", "default": "none"},
    },
}

_COMMON_ERRORS = {
    "400": _error_response("Bad input: `error.code` says what, `error.field` where."),
    "401": _error_response("No or an invalid token."),
    "403": _error_response("Not allowed for this user."),
    "404": _error_response("No such refund (or not visible to you)."),
}

SCHEMA = {
    "openapi": "3.1.0",
    "info": {
        "title": "Refund Office API",
        "version": "1.0.0",
        "description": "File, follow, approve and reject refunds. Authenticate with `Authorization: Token <key>`.",
    },
    "servers": [{"url": "/"}],
    "security": [{"token": []}],
    "paths": {
        "/api/refunds/": {
            "get": {
                "operationId": "listRefunds",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": RefundStatus.values}},
                    {"name": "provider", "in": "query", "schema": {"type": "string", "pattern": _PRINTABLE}},
                    {"name": "currency", "in": "query", "schema": {"type": "string", "pattern": _PRINTABLE}},
                    {"name": "product", "in": "query", "schema": {"type": "string", "pattern": _PRINTABLE}},
                    {"name": "connector_transaction_id", "in": "query", "schema": {"type": "string", "pattern": _PRINTABLE}},
                    {"name": "created_after", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "created_before", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "mine", "in": "query", "schema": {"type": "string", "enum": ["1", "true", "0", "false"]}},
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
                "responses": {
                    "200": {
                        "description": "A page of refunds, newest first.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RefundPage"}}},
                    },
                    **_COMMON_ERRORS,
                },
            },
            "post": {
                "operationId": "createRefund",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RefundCreate"}}},
                },
                "responses": {
                    "201": _refund_response("Filed."),
                    "200": _refund_response("The same request again: the refund it filed."),
                    **_COMMON_ERRORS,
                    "404": _error_response("`transaction_not_found`: the provider knows no such payment."),
                    "409": _error_response("`idempotency_conflict`: the id was used for a different request."),
                    "413": _error_response("`payload_too_large`."),
                    "415": _error_response("`unsupported_media_type`: send JSON."),
                    "422": _error_response("`amount_exceeds_refundable` or `currency_mismatch`."),
                    "503": _error_response("`provider_unavailable`: a full refund while the provider is unreachable."),
                },
            },
        },
        "/api/refunds/{merchant_refund_id}/": {
            "get": {
                "operationId": "getRefund",
                "parameters": [{"name": "merchant_refund_id", "in": "path", "required": True, "schema": _MERCHANT_REFUND_ID}],
                "responses": {"200": _refund_response("The refund."), **_COMMON_ERRORS},
            }
        },
        **{
            f"/api/refunds/{{merchant_refund_id}}/{verb}/": {
                "post": {
                    "operationId": f"{verb}Refund",
                    "parameters": [
                        {"name": "merchant_refund_id", "in": "path", "required": True, "schema": _MERCHANT_REFUND_ID}
                    ],
                    "requestBody": {
                        "required": verb == "reject",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}},
                    },
                    "responses": {
                        "200": _refund_response(f"{verb.capitalize()}d."),
                        **_COMMON_ERRORS,
                        "409": _error_response("`not_awaiting_approval`."),
                        "415": _error_response("`unsupported_media_type`: send JSON."),
                    },
                }
            }
            for verb in ("approve", "reject")
        },
    },
    "components": {
        "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        "schemas": {
            "Money": _MONEY,
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message", "field"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "field": {"type": ["string", "null"]},
                        },
                    }
                },
            },
            "RefundCreate": {
                "type": "object",
                "additionalProperties": False,
                "required": ["merchant_refund_id", "connector_transaction_id"],
                "properties": {
                    "merchant_refund_id": _MERCHANT_REFUND_ID,
                    # enum and pattern: the enabled providers', filled in per request.
                    "provider": {"type": "string", "enum": ["stripe"], "default": "stripe"},
                    "connector_transaction_id": {"type": "string", "maxLength": 255, "pattern": r"^(pi|ch|py)_[A-Za-z0-9]+$"},
                    "items": {
                        "description": "Invoice lines refunded (providers that take them; `items_not_supported` "
                        "otherwise). Their costs times quantities add up to `amount` (`items_mismatch`); "
                        "without an amount, their total is the amount.",
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_ITEMS,
                        "items": {"$ref": "#/components/schemas/RefundItem"},
                    },
                    "amount": {"oneOf": [{"$ref": "#/components/schemas/Money"}, {"type": "null"}]},
                    "reason": {"type": "string", "maxLength": 500, "pattern": _PRINTABLE},
                    "reason_code": {"type": "string", "description": "An active reason code (admin › Reason codes)."},
                    "metadata": {
                        "type": "object",
                        "maxProperties": MAX_METADATA_KEYS,
                        "propertyNames": {"minLength": 1, "maxLength": 40, "pattern": _PRINTABLE},
                        "additionalProperties": {
                            "oneOf": [
                                {"type": "string", "maxLength": 500, "pattern": _PRINTABLE},
                                {"type": "number"},
                            ]
                        },
                    },
                    "product": {"type": "string", "maxLength": 200, "pattern": _PRINTABLE},
                },
            },
            "RefundItem": _ITEM,
            "Decision": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"comment": {"type": "string", "maxLength": 1000}},
            },
            "Approval": {
                "type": "object",
                "properties": {
                    "decision": {"type": "string", "enum": ["approved", "rejected", "auto_approved"]},
                    "approver": {"type": ["string", "null"]},
                    "comment": {"type": "string"},
                    "tier": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "Refund": {
                "type": "object",
                "required": ["merchant_refund_id", "status", "amount"],
                "properties": {
                    "merchant_refund_id": {"type": "string"},
                    "provider": {"type": "string"},
                    "connector_transaction_id": {"type": "string"},
                    "connector_refund_id": {"type": ["string", "null"]},
                    "status": {"type": "string", "enum": RefundStatus.values},
                    "amount": {"$ref": "#/components/schemas/Money"},
                    "reason": {"type": "string"},
                    "reason_code": {"type": ["string", "null"]},
                    "metadata": {"type": "object"},
                    "product": {"type": "string"},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/RefundItem"}},
                    "requested_by": {"type": ["string", "null"]},
                    "origin": {"type": "string", "enum": ["app", "external"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "resolved_at": {"type": ["string", "null"], "format": "date-time"},
                    "approvals": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}},
                    "error": {
                        "type": ["object", "null"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
            "RefundPage": {
                "type": "object",
                "required": ["count", "results"],
                "properties": {
                    "count": {"type": "integer"},
                    "next": {"type": ["string", "null"]},
                    "previous": {"type": ["string", "null"]},
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Refund"}},
                },
            },
        },
    },
}


def build_schema() -> dict:
    """SCHEMA with the enabled providers and their transaction id shapes."""
    schema = copy.deepcopy(SCHEMA)
    create = schema["components"]["schemas"]["RefundCreate"]["properties"]
    names = provider_names()
    create["provider"]["enum"] = names
    create["reason_code"]["enum"] = active_reason_codes()
    patterns = [provider_class(name).transaction_id_pattern.removeprefix("^").removesuffix("$") for name in names]
    if patterns:
        create["connector_transaction_id"]["pattern"] = "^(?:" + "|".join(f"(?:{p})" for p in patterns) + ")$"
    # Items only for providers that take them, with the tax labels those providers know.
    classes = {name: provider_class(name) for name in names}
    taxes = sorted({rate for cls in classes.values() if cls.supports_items for rate in cls.item_tax_rates})
    schema["components"]["schemas"]["RefundItem"]["properties"]["tax"]["enum"] = taxes or ["none"]
    default = create["provider"]["default"]

    def chosen(providers: list[str]) -> dict:
        """The body names one of `providers`, or none and the default is one of them."""
        named = {"required": ["provider"], "properties": {"provider": {"enum": providers}}}
        return {"anyOf": [{"not": {"required": ["provider"]}}, named]} if default in providers else named

    rules = [
        {"if": chosen([name]), "then": {"properties": {"connector_transaction_id": {"pattern": cls.transaction_id_pattern}}}}
        for name, cls in classes.items()
    ]
    no_items = [name for name, cls in classes.items() if not cls.supports_items]
    if no_items:
        rules.append({"if": chosen(no_items), "then": {"not": {"required": ["items"]}}})
    schema["components"]["schemas"]["RefundCreate"]["allOf"] = rules
    return schema


def openapi_schema(request):
    return JsonResponse(build_schema())
