"""The project as a hostile client sees it: every URL pattern (from the root URLconf), a world of
rows so every path has a valid value, and the forms, query parameters and filter links each page
offers (read from the page as a superuser renders it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RegexPattern
from django.utils import timezone
from rest_framework.views import APIView

from approvals.models import Approval, ApproverLimit, AutoApproveThreshold
from refunds.api.authentication import api_token_create
from refunds.models import (
    ExportJob, ReasonCode, RefundBatch, RefundBatchRow, RefundLog, RefundRequest, Sale, WebhookEvent,
)
from tests import factories

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


@dataclass(frozen=True)
class Route:
    template: str  # "refunds/<str:merchant_refund_id>", regex patterns turned into the same shape
    name: str
    callback: object

    @property
    def params(self) -> list[str]:
        return [m.group(2) for m in _PARAM.finditer(self.template)]

    @property
    def is_json(self) -> bool:
        view_class = getattr(self.callback, "cls", None)
        return (isinstance(view_class, type) and issubclass(view_class, APIView)) or self.name == "provider-webhook"

    def url(self, values: dict[str, str]) -> str:
        """The path with each parameter's (already percent-encoded) value."""
        return "/" + _PARAM.sub(lambda m: values[m.group(2)], self.template)


def routes() -> list[Route]:
    """Every URL pattern of the root URLconf, with its namespaced name."""

    def walk(resolver, prefix: str, namespace: str):
        for entry in resolver.url_patterns:
            pattern = entry.pattern
            text = str(pattern)
            if isinstance(pattern, RegexPattern):
                text = _REGEX_GROUP.sub(lambda m: f"<{m.group(1)}>", text.lstrip("^").rstrip("$"))
            if isinstance(entry, URLResolver):
                yield from walk(entry, prefix + text, namespace + (f"{entry.namespace}:" if entry.namespace else ""))
            else:
                yield Route(template=prefix + text, name=namespace + (entry.name or ""), callback=entry.callback)

    return list(walk(get_resolver(), "", ""))


@dataclass
class World:
    """Rows every kind of path can point at, and the users of each role."""

    users: dict
    refund: RefundRequest
    export_job: ExportJob
    token: str
    batch: RefundBatch | None = None
    pks: dict = field(default_factory=dict)  # (app_label, model_name) -> a pk

    def valid(self, route: Route, param: str) -> str:
        """A value of `param` that resolves to something real."""
        model = _admin_model(route.name)
        if param == "object_id" and model is not None:
            return str(self.pks.get((model._meta.app_label, model._meta.model_name), 1))
        return {
            "merchant_refund_id": self.refund.merchant_refund_id,
            "job_id": str(self.export_job.pk),
            "batch_id": str(self.batch.pk) if self.batch else "1",
            "app_label": "refunds",
            "content_type_id": str(ContentType.objects.get_for_model(RefundRequest).pk),
            "object_id": str(self.refund.pk),
            "provider": "stripe",
            "id": str(self.users["superuser"].pk),
            "url": "nowhere/",
        }.get(param, "x")


def _admin_model(name: str):
    if not name.startswith("admin:"):
        return None
    for model in admin.site._registry:
        if name.startswith(f"admin:{model._meta.app_label}_{model._meta.model_name}_"):
            return model
    return None


def world_build() -> World:
    agent, manager, accountant = factories.agent(), factories.manager(), factories.accountant()
    superuser = factories.UserFactory(is_superuser=True)
    refund = factories.RefundFactory(requested_by=agent, product="Blue mug", amount_minor=200_000)
    factories.RefundFactory(requested_by=manager, status="succeeded")
    RefundLog.objects.create(refund=refund, event=RefundLog.Event.NOTE, message="walk")
    Approval.objects.create(refund=refund, approver=manager, decision=Approval.Decision.APPROVED, tier=1, limit_minor=1)
    AutoApproveThreshold.objects.create(currency="USD", max_minor_amount=5000)
    ApproverLimit.objects.create(user=manager, currency="USD", max_minor_amount=100_000)
    ReasonCode.objects.get_or_create(code="walk", defaults={"label": "Walk"})
    WebhookEvent.objects.create(provider="stripe", event_id="evt_walk", type="refund.updated", payload={"id": "evt_walk"})
    Sale.objects.create(source="import", external_id="s-1", product="Blue mug", amount_minor=1000, currency="USD",
                        sold_at=timezone.now())
    job = ExportJob.objects.create(requested_by=accountant, format="csv", filters={})
    users = {"agent": agent, "manager": manager, "accountant": accountant, "superuser": superuser, "anonymous": None}
    # A bulk refund file of the agent's, checked and waiting for confirmation, one row filed already.
    batch = RefundBatch.objects.create(created_by=agent, file_name="walk.csv", state=RefundBatch.State.CHECKED,
                                       rows_total=2, rows_checked=2, totals={"USD": {"auto": 100, "auto_rows": 1}})
    RefundBatchRow.objects.create(batch=batch, line=2, merchant_refund_id="walk-b1", provider="stripe",
                                  connector_transaction_id="pi_walk", amount_minor=100, currency="USD", plan="auto",
                                  planned_minor=100, message="will be approved at once.")
    RefundBatchRow.objects.create(batch=batch, line=3, merchant_refund_id=refund.merchant_refund_id, provider="stripe",
                                  connector_transaction_id=refund.connector_transaction_id, plan="already",
                                  outcome="already", refund=refund)
    world = World(users=users, refund=refund, export_job=job, token=api_token_create(user=agent), batch=batch)
    for model in admin.site._registry:
        first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            world.pks[(model._meta.app_label, model._meta.model_name)] = first
    return world


@dataclass
class Form:
    method: str
    action: str
    fields: list[tuple[str, str]]  # name, default value (first option for selects), in page order
    files: list[str]


class PageReader(HTMLParser):
    """The forms of a page and the query parameter names its links use."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.link_params: set[str] = set()
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(method=(a.get("method") or "get").lower(), action=a.get("action") or "", fields=[], files=[]))
        elif tag == "a" and (a.get("href") or "").startswith("?"):
            self.link_params.update(name for name, _ in parse_qsl(a["href"][1:], keep_blank_values=True))
        elif not self.forms or not a.get("name"):
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind == "file":
                self.forms[-1].files.append(a["name"])
            elif kind not in ("submit", "button", "image", "reset") or a.get("value"):
                # Unticked boxes too (the admin's `_selected_action`): each is a field to attack.
                self.forms[-1].fields.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select = a["name"]
        elif tag == "textarea":
            self.forms[-1].fields.append((a["name"], ""))

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            self.forms[-1].fields.append((self._select, ""))
            self._select = None

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)


def page_read(html: str) -> PageReader:
    reader = PageReader()
    reader.feed(html)
    return reader


def action_path(action: str, page_path: str) -> str:
    return urlsplit(action).path or page_path
