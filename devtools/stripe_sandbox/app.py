"""The sandbox's aiohttp application: localstripe's routes behind our
middlewares, with our refund/event routes and /_config endpoints in front."""

import asyncio
import base64
import json
import logging
import time

from aiohttp import web
from localstripe import server as ls_server
from localstripe import webhooks as ls_webhooks
from localstripe.errors import UserError
from localstripe.resources import store

from . import disputes, events, patches, persist, refunds
from .errors import (StripeError, from_localstripe, invalid, json_response,
                     rate_limited, server_error)
from .listing import PAGE_PARAMS, check_params, paginate
from .state import STATE, Fault, IdempotentEntry, TokenBucket

log = logging.getLogger("stripe_sandbox")


async def read_params(request):
    """Request parameters (form or JSON body, or query), parsed once."""
    params = request.get("sandbox.params")
    if params is None:
        if request.method == "GET":
            params = ls_server.unflatten_data(request.query)
        elif request.content_type == "application/json":
            try:
                params = await request.json() if request.can_read_body else {}
            except ValueError:
                raise invalid("Invalid JSON in the request body.") from None
        else:
            params = ls_server.unflatten_data(await request.post())
        request["sandbox.params"] = params = params or {}
    return params


# Middlewares, outermost first ---------------------------------------------

@web.middleware
async def stats_middleware(request, handler):
    response = await handler(request)
    if not request.path.startswith("/_config/"):
        resource = request.match_info.route.resource
        endpoint = (f"{request.method} "
                    f"{resource.canonical if resource else 'unmatched'}")
        STATE.stats.requests[endpoint, response.status] += 1
        if response.status == 429:
            STATE.stats.bump("responses_429")
    return response


async def respond(handler, request):
    """The handler's response, any error rendered as Stripe's error JSON."""
    try:
        return await handler(request)
    except StripeError as error:
        return error.response()
    except UserError as error:
        return from_localstripe(error, request).response()
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return StripeError(error.status, "Unrecognized request URL "
                           f"({request.method}: {request.path}).").response()
    except Exception:
        log.exception("unexpected error on %s %s", request.method,
                      request.path)
        return server_error(500).response()


@web.middleware
async def errors_middleware(request, handler):
    return await respond(handler, request)


@web.middleware
async def auth_middleware(request, handler):
    if request.path.startswith("/v1/") and not _has_secret_key(request):
        return StripeError(
            401, "You did not provide a valid secret API key (sk_...). "
            "Send it as 'Authorization: Bearer sk_test_...'.").response()
    return await handler(request)


def _has_secret_key(request):
    scheme, _, credentials = request.headers.get(
        "Authorization", "").partition(" ")
    if scheme == "Basic":
        try:
            credentials = base64.b64decode(credentials).decode()
        except ValueError:  # also covers binascii and unicode errors
            return False
        credentials = credentials.partition(":")[0]
    elif scheme != "Bearer":
        return False
    return credentials.startswith("sk_") and len(credentials) > 3


@web.middleware
async def lazy_settle_middleware(request, handler):
    # Settle refunds that are due even if the timer has not run yet.
    heap = STATE.settlements
    if heap and heap[0][0] <= time.time():
        refunds.settle_due()
    return await handler(request)


@web.middleware
async def rate_limit_middleware(request, handler):
    bucket = STATE.rate_limit
    if bucket is not None and request.path.startswith("/v1/"):
        wait = bucket.take()
        if wait:
            STATE.stats.bump("rate_limited")
            return rate_limited(
                f"Sandbox rate limit of {bucket.rate:g} requests/s exceeded; "
                f"retry in {wait:.3f}s.", retry_after=wait).response()
    return await handler(request)


@web.middleware
async def faults_middleware(request, handler):
    if not STATE.faults or not request.path.startswith("/v1/"):
        return await handler(request)
    fault = STATE.take_fault(request.method, request.path)
    if fault is None:
        return await handler(request)
    STATE.stats.bump("faults_injected")
    if fault.delay_seconds or fault.after:
        # Read the body first: once a client times out and disconnects,
        # aiohttp no longer lets the handler read it.
        await read_params(request)
    if fault.after:
        await respond(handler, request)  # it acted; its answer gets lost
        # ...and, with a delay, hangs first: time for a test to kill the
        # client between the provider's action and the client's commit.
        await asyncio.sleep(fault.delay_seconds)
    elif fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    if fault.status is None:
        return await handler(request)
    if fault.status == 429:
        error = rate_limited("Sandbox fault: too many requests.", 1)
    else:
        error = server_error(fault.status,
                             f"Sandbox fault: injected HTTP {fault.status}.")
    response = error.response()
    response.headers["X-Sandbox-Fault"] = "true"
    return response


@web.middleware
async def idempotency_middleware(request, handler):
    key = request.headers.get("Idempotency-Key")
    if (not key or request.method != "POST"
            or not request.path.startswith("/v1/")):
        return await handler(request)
    params = json.dumps(await read_params(request), sort_keys=True)
    endpoint = f"POST {request.path}"
    # No await between this lookup and storing the entry: requests with the
    # same key run on this one thread, so only the first one executes.
    entry = STATE.idempotency.get(key)
    if entry is not None:
        return _replay(entry, key, endpoint, params)
    entry = STATE.idempotency[key] = IdempotentEntry(endpoint, params)
    try:
        # Errors rendered here, as some of them are kept under the key.
        response = await respond(handler, request)
    except BaseException:  # cancelled: let a retry execute
        STATE.idempotency.pop(key, None)
        raise
    if _keeps_result(response.status):
        entry.status, entry.body = response.status, response.body
    else:
        STATE.idempotency.pop(key, None)
    response.headers["Idempotency-Key"] = key
    return response


def _keeps_result(status):
    # Stripe keeps the result under the idempotency key once the endpoint has
    # started executing (successes, card errors, 500s); requests rejected by
    # validation are not kept, so the key can be reused with fixed params.
    return status < 400 or status == 402 or status >= 500


def _replay(entry, key, endpoint, params):
    retry = (f"Try using a key other than '{key}' if you meant to execute a "
             "different request.")
    if entry.endpoint != endpoint:
        error = StripeError(
            400, "Keys for idempotent requests can only be used for the same "
            f"endpoint they were first used for ('{entry.endpoint}' vs "
            f"'{endpoint}'). {retry}", type="idempotency_error")
    elif entry.params != params:
        error = StripeError(
            400, "Keys for idempotent requests can only be used with the "
            f"same parameters they were first used with. {retry}",
            type="idempotency_error")
    elif entry.status is None:
        error = StripeError(
            409, "There is currently another in-progress request using this "
            f"Idempotent Key: '{key}'. Please try again later.",
            type="idempotency_error")
    else:
        STATE.stats.bump("idempotent_replays")
        return web.Response(body=entry.body, status=entry.status,
                            content_type="application/json",
                            headers={"Idempotent-Replayed": "true",
                                     "Idempotency-Key": key})
    return error.response()


class AccessLogger(web.AbstractAccessLogger):
    def log(self, request, response, time):
        self.logger.info("%s %s %d %.1fms", request.method, request.path_qs,
                         response.status, time * 1000)


# /v1 handlers the sandbox owns ----------------------------------------------

def _exported(obj, params):
    return json_response(obj._export(expand=params.get("expand")))


async def create_refund(request):
    params = await read_params(request)
    return _exported(refunds.create_refund(params), params)


async def list_refunds(request):
    params = await read_params(request)
    check_params(params, PAGE_PARAMS | {"charge", "payment_intent"})
    return json_response(paginate(refunds.list_source(params), params,
                                  "/v1/refunds"))


async def list_payment_intents(request):
    """Stripe's list semantics (newest first, cursors, `created` range) for PaymentIntents;
    localstripe lists them oldest first and refuses `created`."""
    params = await read_params(request)
    check_params(params, PAGE_PARAMS | {"customer"})
    intents = [value for key, value in store.items()
               if key.startswith("payment_intent:")
               and (not params.get("customer")
                    or value.customer == params["customer"])]
    intents.sort(key=lambda intent: intent.created)  # stable: creation order
    return json_response(paginate(intents, params, "/v1/payment_intents"))


async def retrieve_refund(request):
    params = await read_params(request)
    check_params(params, {"expand"})
    return _exported(refunds.get_refund(request.match_info["id"]), params)


async def update_refund(request):
    params = await read_params(request)
    return _exported(refunds.update_refund(request.match_info["id"], params),
                     params)


async def cancel_refund(request):
    params = await read_params(request)
    check_params(params, {"expand"})
    return _exported(refunds.cancel_refund(request.match_info["id"]), params)


async def list_disputes(request):
    params = await read_params(request)
    check_params(params, PAGE_PARAMS | {"charge", "payment_intent"})
    return json_response(paginate(disputes.list_source(params), params,
                                  "/v1/disputes"))


async def retrieve_dispute(request):
    params = await read_params(request)
    check_params(params, {"expand"})
    return _exported(disputes.get_dispute(request.match_info["id"]), params)


async def list_events(request):
    params = await read_params(request)
    check_params(params, PAGE_PARAMS | {"type", "types"})
    types = params.get("types") or ([params["type"]] if "type" in params
                                    else None)
    items = STATE.events
    if types:
        # Stripe accepts wildcards like "refund.*".
        exact = {t for t in types if not t.endswith("*")}
        prefixes = tuple(t[:-1] for t in types if t.endswith("*"))
        items = [e for e in items
                 if e.type in exact or (prefixes and e.type.startswith(prefixes))]
    return json_response(paginate(items, params, "/v1/events"))


# /_config handlers ----------------------------------------------------------

def _optional(value, cast, param):
    if value in (None, "", "null"):
        return None
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid {param}: {value!r}", param=param) from None


def _flag(value):
    return value in (True, 1, "true", "1")  # forms send strings


def _parse_fault(params):
    check_params(params, {"status", "count", "delay_seconds", "path_prefix",
                          "methods", "after"})
    status = _optional(params.get("status"), int, "status")
    if status is not None and status != 429 and not 500 <= status <= 599:
        raise invalid("status must be 429 or 5xx.", param="status")
    after = _flag(params.get("after"))
    if after and status is None:
        status = 500
    delay = _optional(params.get("delay_seconds"), float, "delay_seconds")
    if status is None and not delay:
        raise invalid("A fault needs a status or delay_seconds.")
    count = _optional(params.get("count", 1), int, "count")
    if count is not None and count < 1:
        raise invalid("count must be at least 1 (or null: until cleared).",
                      param="count")
    path_prefix = params.get("path_prefix") or "/v1"
    if not path_prefix.startswith("/v1"):
        raise invalid("Faults apply to /v1 requests only.",
                      param="path_prefix")
    methods = params.get("methods")
    if isinstance(methods, str):
        methods = [methods]
    return Fault(status=status, count=count, delay_seconds=delay or 0.0,
                 path_prefix=path_prefix, after=after,
                 methods=frozenset(m.upper() for m in methods)
                 if methods else None)


def _faults_json():
    return json_response({"faults": [f.to_json() for f in STATE.faults]})


async def add_fault(request):
    STATE.faults.append(_parse_fault(await read_params(request)))
    return _faults_json()


async def get_faults(request):
    return _faults_json()


async def clear_faults(request):
    STATE.faults.clear()
    return _faults_json()


def _rate_limit_json():
    bucket = STATE.rate_limit
    return json_response({"per_second": bucket.rate if bucket else None})


async def set_rate_limit(request):
    params = await read_params(request)
    per_second = _optional(params.get("per_second"), float, "per_second")
    if per_second is not None and per_second <= 0:
        raise invalid("per_second must be positive (or null: no limit).",
                      param="per_second")
    STATE.rate_limit = TokenBucket(per_second) if per_second else None
    return _rate_limit_json()


async def get_rate_limit(request):
    return _rate_limit_json()


async def get_stats(request):
    return json_response(STATE.stats.to_json())


async def reset_stats(request):
    STATE.stats.reset()
    return json_response(STATE.stats.to_json())


async def settle_refund(request):
    params = await read_params(request)
    check_params(params, {"status", "failure_reason"})
    refund = refunds.force_settle(request.match_info["id"],
                                  params.get("status"),
                                  params.get("failure_reason"))
    return json_response(refund._export())


async def expire_idempotency_keys(request):
    """Forget idempotency keys, as Stripe does after about 24 hours: all of them, or the one
    named by `key`. A request sent again with a forgotten key executes again."""
    params = await read_params(request)
    check_params(params, {"key"})
    key = params.get("key")
    if key:
        expired = 1 if STATE.idempotency.pop(key, None) is not None else 0
    else:
        expired = len(STATE.idempotency)
        STATE.idempotency.clear()
    STATE.dirty = True
    return json_response({"expired": expired})


async def open_dispute(request):
    """Open a dispute on a payment (`payment_intent` or `charge`; `inquiry` for a
    warning_needs_response inquiry, else a chargeback) and send its events."""
    return json_response(disputes.open_dispute(await read_params(request))._export())


async def close_dispute(request):
    """Close a dispute `won` or `lost` and send charge.dispute.closed."""
    dispute = disputes.close_dispute(request.match_info["id"],
                                     await read_params(request))
    return json_response(dispute._export())


async def flush_data(request):
    store.clear()
    STATE.reset_data()
    return web.Response()


async def remove_webhook(request):
    ls_webhooks._webhooks.pop(request.match_info["id"], None)
    return web.Response()


ROUTES = (
    ("POST", "/v1/refunds", create_refund),
    ("GET", "/v1/refunds", list_refunds),
    ("GET", "/v1/refunds/{id}", retrieve_refund),
    ("POST", "/v1/refunds/{id}", update_refund),
    ("POST", "/v1/refunds/{id}/cancel", cancel_refund),
    ("POST", "/v1/test_helpers/refunds/{id}/expire", cancel_refund),
    ("GET", "/v1/disputes", list_disputes),
    ("GET", "/v1/disputes/{id}", retrieve_dispute),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/payment_intents", list_payment_intents),
    ("GET", "/_config/faults", get_faults),
    ("POST", "/_config/faults", add_fault),
    ("DELETE", "/_config/faults", clear_faults),
    ("GET", "/_config/rate_limit", get_rate_limit),
    ("POST", "/_config/rate_limit", set_rate_limit),
    ("GET", "/_config/stats", get_stats),
    ("DELETE", "/_config/stats", reset_stats),
    ("POST", "/_config/refunds/{id}/settle", settle_refund),
    ("POST", "/_config/disputes", open_dispute),
    ("POST", "/_config/disputes/{id}/close", close_dispute),
    ("POST", "/_config/idempotency/expire", expire_idempotency_keys),
    ("DELETE", "/_config/data", flush_data),
    ("DELETE", "/_config/webhooks/{id}", remove_webhook),
)
# localstripe routes we drop: its refunds bypass our index and lifecycle.
OWNED_PREFIXES = ("/v1/refunds", "/v1/disputes")


def build_app(settle_seconds=2.0, rate_limit=None, state_file=None,
              webhook_url=None, webhook_secret=None):
    patches.apply()
    STATE.settle_seconds = settle_seconds
    STATE.rate_limit = TokenBucket(rate_limit) if rate_limit else None
    if webhook_url:
        ls_webhooks.register_webhook("cli", webhook_url, webhook_secret, None)

    middlewares = [stats_middleware, errors_middleware, auth_middleware,
                   lazy_settle_middleware, rate_limit_middleware,
                   faults_middleware, idempotency_middleware]
    if state_file:
        middlewares.insert(0, persist.mark_dirty_middleware)
    app = web.Application(middlewares=middlewares)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    owned = {(r.method, r.resource.canonical) for r in app.router.routes()}
    for route in ls_server.app.router.routes():
        path = route.resource.canonical
        if (route.method, path) not in owned \
                and not path.startswith(OWNED_PREFIXES):
            app.router.add_route(route.method, path, route.handler)

    if state_file:
        persist.attach(app, state_file)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app


async def _on_startup(app):
    refunds.arm_timer()  # refunds left pending in a loaded state file


async def _on_cleanup(app):
    await events.close()
