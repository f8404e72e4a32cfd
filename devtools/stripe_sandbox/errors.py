"""Stripe-shaped errors: {"error": {"type", "code", "message", "param"}}.

The stripe SDK picks its exception class from the status, `type` and `code`,
so every error the sandbox sends goes through `StripeError.response()`.
"""

import json

from aiohttp import web


def json_response(data, status=200, headers=None):
    # Compact JSON: localstripe's indent=2 + sort_keys costs time on the hot path.
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(),
                        status=status, headers=headers,
                        content_type="application/json")


class StripeError(Exception):
    def __init__(self, status, message, *, type="invalid_request_error",
                 code=None, param=None, headers=None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "code": code,
                               "message": message, "param": param}}
        self.headers = headers

    def response(self):
        return json_response(self.body, self.status, self.headers)


def invalid(message, param=None, code=None):
    return StripeError(400, message, param=param, code=code)


def no_such(kind, id, param):
    return StripeError(404, f"No such {kind}: '{id}'",
                       code="resource_missing", param=param)


def rate_limited(message, retry_after=None):
    headers = None
    if retry_after is not None:
        # Retry-After takes whole seconds; the message carries the exact wait.
        headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))}
    return StripeError(429, message, code="rate_limit", headers=headers)


def server_error(status, message="An unknown error occurred on the sandbox."):
    return StripeError(status, message, type="api_error")


def from_localstripe(error, request):
    """Normalise localstripe's UserError (no code/param, 'Not Found' 404s)."""
    body = dict(error.body["error"])
    status = error.code
    code = body.pop("code", None)
    param = body.pop("param", None)
    message = body.pop("message", None) or "Bad request"
    if status == 404:
        code = code or "resource_missing"
        id = request.match_info.get("id")
        if id is not None and message == "Not Found":
            # "/v1/charges/{id}" -> "No such charge: 'ch_...'", as at Stripe
            kind = request.match_info.route.resource.canonical.split("/")[2]
            message = f"No such {kind.removesuffix('s')}: '{id}'"
            param = param or "id"
    err = StripeError(status, message, type=body.pop("type"), code=code,
                      param=param)
    err.body["error"].update(body)  # e.g. the `charge` of a card error
    return err
