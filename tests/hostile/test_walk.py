"""Every URL pattern of the project, as every role, with hostile values in every path parameter,
query parameter (admin filters and search included), form field and JSON field: no answer is a
5xx. Values are sampled per parameter (tests.hostile.values.Sampler) so every class reaches every
parameter across the walk in about a minute; `Client(raise_request_exception=False)` turns an
unhandled exception into the 500 a user would see.

`bin/test tests/hostile/test_walk.py -s` prints what was tried (the README's "Hostile input" table)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

import pytest
from django.db import transaction
from django.test import Client

from tests.hostile import site
from tests.hostile.values import HOSTILE, Sampler, Tally, deep_json, deep_object, form_body, json_values, wire

pytestmark = pytest.mark.django_db
ROLES = ["anonymous", "agent", "manager", "accountant", "superuser"]
WEBHOOK_SECRET = "whsec_walk_secret"
# Query parameters every page is also tried with: the pagers' and searches', and on admin pages
# the admin's own (ordering, page, popup, to-field, error flag, show all, saved filters).
COMMON_QUERY = ["q", "page"]
ADMIN_QUERY = ["o", "p", "e", "_popup", "_to_field", "all", "_changelist_filters"]


def _json_bodies(route: site.Route, world: site.World) -> dict | None:
    """The JSON body a route takes, valid in shape; each field in turn gets every hostile value."""
    if route.name == "api-refunds":
        return {
            "merchant_refund_id": "walk-1", "provider": "stripe", "connector_transaction_id": "pi_walk",
            "amount": {"minor_amount": 100, "currency": "USD"}, "reason": "walk", "metadata": {"k": "v"},
            "product": "Blue mug",
        }
    if route.name in ("api-refund-approve", "api-refund-reject"):
        return {"comment": "walk"}
    if route.name == "provider-webhook":
        return {"id": "evt_hostile", "object": "event", "type": "charge.refunded",
                "data": {"object": {"id": "ch_walk", "object": "charge", "payment_intent": "pi_walk"}}}
    return None


def _sign(body: bytes) -> str:
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Walker:
    def __init__(self, client: Client, role: str, tally: Tally):
        self.client, self.role, self.tally = client, role, tally

    def send(self, method: str, path: str, *, cls: str, place: str, query: str = "", **kwargs) -> int:
        # Each request in a savepoint rolled back afterwards: hostile POSTs (deletes, approvals)
        # change nothing for the next one, and a database error cannot poison the rest.
        started = time.monotonic()
        with transaction.atomic():
            url = f"{path}?{query}" if query else path
            response = getattr(self.client, method)(url, **kwargs)
            transaction.set_rollback(True)
        self.tally.seconds[f"{place} {path[:50]}"] += time.monotonic() - started
        exc = getattr(response, "exc_info", None)
        error = f" {exc[0].__name__}: {str(exc[1])[:120]}" if exc else ""
        self.tally.record(
            cls=cls, place=place, status=response.status_code, what=f"{self.role} {method.upper()} {url[:120]!r}{error}"
        )
        return response.status_code


def _discover(world: site.World, route_list: list[site.Route]) -> dict[str, tuple[set[str], list[site.Form], str]]:
    """Per route, as a superuser sees its valid URL: the query parameter names (GET forms and
    filter links) and the POST forms."""
    client = Client(raise_request_exception=False)
    client.force_login(world.users["superuser"])
    found = {}
    for route in route_list:
        path = route.url({p: wire(world.valid(route, p)) for p in route.params})
        response = client.get(path)
        params: set[str] = set()
        forms: list[site.Form] = []
        if "html" in response.get("Content-Type", ""):
            page = site.page_read(response.content.decode())
            params |= page.link_params
            for form in page.forms:
                if form.method == "get":
                    params |= {name for name, _ in form.fields}
                else:
                    forms.append(form)
        found[route.name or route.template] = (params, forms, path)
    return found


def _walk_route(walker: Walker, route: site.Route, world: site.World, found, sampler: Sampler) -> None:
    params, forms, path = found[route.name or route.template]
    allowed = walker.send("get", path, cls="valid", place="valid") == 200
    if route.is_json:
        # The API answers every role but the anonymous; a webhook's sender is anonymous.
        allowed = (walker.role == "anonymous") == (route.name == "provider-webhook")
    # Where the role is turned away, a NUL in a few parameters and fewer values in the path show
    # that the refusal comes first.
    draws, most = (1, None) if allowed else (0, 3)
    for param in route.params:
        for cls, value in sampler.draw(draws):
            values = {p: wire(world.valid(route, p)) for p in route.params}
            values[param] = wire(value)
            walker.send("get", route.url(values), cls=cls, place="path parameter")
            walker.send("post", route.url(values), cls=cls, place="path parameter")
    common = COMMON_QUERY + (ADMIN_QUERY if route.name.startswith("admin:") else [])
    for name in sorted(params | set(common))[:most]:
        for cls, value in sampler.draw(draws):
            walker.send("get", path, query=f"{wire(name)}={wire(value)}", cls=cls, place="query parameter")
    for form in forms:
        target = site.action_path(form.action, path)
        for index, (name, _) in enumerate(form.fields[:most]):
            for cls, value in sampler.draw(draws):
                fields = list(form.fields)
                fields[index] = (name, value)
                walker.send("post", target, data=form_body(fields), content_type="application/x-www-form-urlencoded",
                            cls=cls, place="form field")
        for name in form.files:
            for cls, value in sampler.draw(2):
                _post_csv(walker, target, form, name, cls, value)
    if route.is_json:
        _walk_json(walker, route, path, world, every=1 if allowed else 6)
    if route.name == "api-refund-batches":
        # The API takes the file as the body (text/csv): the same hostile rows, and hostile files.
        for cls, value in sampler.draw(4 if allowed else 1):
            walker.send("post", path, data=_hostile_csv(*_BATCH_CSV, value), content_type="text/csv", cls=cls,
                        place="uploaded CSV cell")
        for body in (b"", b"\xef\xbb\xbf", b"\x00" * 64, b"\xff\xfe\x00a", b"a;b;c\n1;2;3\n", b'"' * 5000):
            walker.send("post", path, data=body, content_type="text/csv", cls="junk", place="uploaded CSV cell")


# Per upload form (by its target), a good row of its file; each column in turn gets the hostile value.
_SALES_CSV = (["sale_id", "sold_at", "product", "amount", "currency"], ["s-1", "2026-01-31", "Mug", "12.50", "USD"])
_BATCH_CSV = (
    ["merchant_refund_id", "provider", "connector_transaction_id", "amount", "currency", "reason_code", "note", "product"],
    ["walk-c1", "stripe", "pi_walk", "1.50", "USD", "walk", "Outage", "Mug"],
)


def _hostile_csv(columns: list[str], good: list[str], value: str) -> bytes:
    rows = [",".join(columns)]
    for i in range(len(columns)):
        row = list(good)
        row[i] = '"' + value.replace('"', '""') + '"'
        rows.append(",".join(row))
    return "\r\n".join(rows).encode("utf-8", "surrogatepass")


def _post_csv(walker: Walker, target: str, form: site.Form, file_field: str, cls: str, value: str) -> None:
    """An uploaded CSV with the hostile value in each column of a row of its own."""
    data = _hostile_csv(*(_BATCH_CSV if "/batches/" in target else _SALES_CSV), value)
    boundary = "walkboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in form.fields if not k.startswith("csrf")]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="walk.csv"\r\n'
                 "Content-Type: text/csv\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    walker.send("post", target, data=body, content_type=f"multipart/form-data; boundary={boundary}",
                cls=cls, place="uploaded CSV cell")


def _walk_json(walker: Walker, route: site.Route, path: str, world: site.World, every: int) -> None:
    """Each field of the route's body with every hostile JSON value (every `every`-th one for a
    role that is refused anyway), then deep and malformed bodies."""
    base = _json_bodies(route, world)
    if base is None:
        return

    def post(body: str, cls: str, place: str):
        raw = body.encode("utf-8", "surrogatepass")
        walker.send("post", path, data=raw, content_type="application/json", cls=cls, place=place,
                    HTTP_STRIPE_SIGNATURE=_sign(raw))

    values = json_values()[::every]
    for key in base:
        for cls, value in values:
            post(json.dumps({**base, key: value}), cls, "JSON field")
    if isinstance(base.get("data"), dict):  # the event's object: the fields processing reads
        for key in ("id", "object", "payment_intent", "charge"):
            for cls, value in values:
                post(json.dumps({**base, "data": {"object": {**base["data"]["object"], key: value}}}), cls, "JSON field")
    post(json.dumps({**base, "k\x00": 1}), "nul", "JSON field")
    for body in (deep_json(), deep_object(), json.dumps({**base, "metadata": json.loads(deep_json(500))})):
        post(body, "deep JSON", "JSON body")
    for body in ("[]", '"text"', "1", "null", "{", "\x00", json.dumps([base])):
        post(body, "junk", "JSON body")


def test_no_url_answers_hostile_input_with_a_5xx(settings, capsys):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    # Thousands of intake calls would otherwise queue behind the shared Stripe rate limit.
    settings.PROVIDER_RATE_LIMITS = {"stripe": 0, "robokassa": 0}
    world = site.world_build()
    route_list = [r for r in site.routes() if os.environ.get("HOSTILE_ONLY", "") in r.template]
    found = _discover(world, route_list)
    tally, sampler = Tally(), Sampler()
    started = time.monotonic()
    for role in ROLES:
        client = Client(raise_request_exception=False)
        walker = Walker(client, role, tally)
        for route in route_list:
            if world.users[role] is not None:
                client.force_login(world.users[role])  # a walked logout page logs the client out
            _walk_route(walker, route, world, found, sampler)
            tally.walked.add((role, route.template))
    with capsys.disabled():
        print(f"\n{len(route_list)} URL patterns x {len(ROLES)} roles in {time.monotonic() - started:.0f} s")
        print(tally.table())
        print("slowest:", ", ".join(f"{where} {s:.1f} s" for where, s in tally.seconds.most_common(5)))
    assert set(tally.cases) >= set(HOSTILE), "every class of hostile value was tried"
    assert len(tally.walked) == len(route_list) * len(ROLES)
    assert len(route_list) > 100 or os.environ.get("HOSTILE_ONLY"), "the whole URLconf was walked"
    assert not tally.failures, f"{tally.failure_count} answers were 5xx:\n" + "\n".join(sorted(set(tally.failures))[:80])
