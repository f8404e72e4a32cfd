from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from refunds import errors
from refunds.services import intake, payments
from refunds.forms import PaymentLookupForm, RefundForm
from refunds.jsonlimits import MAX_JSON_DEPTH, json_too_deep
from refunds.money import Money, format_minor
from refunds.providers import UnknownProvider, provider_class
from refunds.providers.base import WebhookRejected
from refunds.services.webhooks import webhook_event_receive
from refunds.selectors import refund_visible_to, refund_with_approvals


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@csrf_exempt
@require_POST
def provider_webhook(request, provider: str):
    """A provider's events, verified by its adapter (Stripe: the signature); 400 and nothing
    changes when they do not verify or are not events. 404 for a provider that is not enabled
    or sends none. Every refusal is JSON with a code: a 5xx would have the sender retry it."""
    try:
        adapter_class = provider_class(provider)
    except UnknownProvider:
        adapter_class = None
    if adapter_class is None or not adapter_class.receives_webhooks:
        return _webhook_error(404, "unknown_provider", f"No webhooks are taken from {provider!r}.")
    # Read here, up to WEBHOOK_MAX_BYTES: request.body would stop at DATA_UPLOAD_MAX_MEMORY_SIZE
    # (the forms' 64 KB) with Django's HTML 400, and events are larger.
    body = request.read(settings.WEBHOOK_MAX_BYTES + 1)
    if len(body) > settings.WEBHOOK_MAX_BYTES:
        return _webhook_error(413, "payload_too_large", f"An event is at most {settings.WEBHOOK_MAX_BYTES} bytes.")
    if json_too_deep(body):
        return _webhook_error(400, "json_too_deep", f"The event nests more than {MAX_JSON_DEPTH} levels deep.")
    try:
        event = adapter_class.from_settings().parse_webhook(payload=body, headers=request.headers)
    except WebhookRejected as error:
        return _webhook_error(error.http_status, error.code, error.message, error.field)
    stored, created = webhook_event_receive(provider=provider, event=event)
    return JsonResponse({"received": True, "duplicate": not created, "event": stored.event_id})


def _webhook_error(status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "field": field}}, status=status)


@login_required
def refund_new(request):
    """File a refund: look the payment up first, show what may be refunded, then file."""
    if not request.user.has_perm("refunds.add_refundrequest"):
        raise Http404  # the page does not exist for roles that cannot file
    preview = form = None
    lookup = PaymentLookupForm(request.POST or request.GET or None)
    if lookup.is_bound and lookup.is_valid():
        try:
            preview = payments.payment_preview(**lookup.cleaned_data)
        except errors.RefundError as error:
            lookup.add_error("connector_transaction_id" if error.field else None, error.message)
    if preview is not None:
        currency = preview.amount.currency
        adapter = provider_class(preview.provider)
        # Invoice items only for providers that take them, with that provider's tax rates.
        tax_rates = tuple(adapter.item_tax_rates) if adapter.supports_items else None
        if request.method == "POST" and "add_item" in request.POST:
            # "Add a row": show the same form again, one row longer; nothing is checked or filed.
            form = RefundForm(
                currency=currency,
                item_tax_rates=tax_rates,
                item_rows=RefundForm.posted_item_rows(request.POST),
                initial={name: request.POST.get(name) for name in RefundForm.base_fields if name in request.POST},
            )
        elif request.method == "POST":
            form = RefundForm(request.POST, currency=currency, item_tax_rates=tax_rates, refundable=preview.refundable_now)
            if form.is_valid():
                return _file(request, form, preview) or _render_new(request, lookup, preview, form)
        else:
            form = RefundForm(
                currency=currency,
                item_tax_rates=tax_rates,
                initial={
                    "merchant_refund_id": RefundForm.new_merchant_refund_id(),
                    **lookup.cleaned_data,
                    "product": preview.product,
                },
            )
    return _render_new(request, lookup, preview, form)


def _file(request, form, preview):
    data = form.cleaned_data
    amount = Money(data["amount_minor"], preview.amount.currency) if data["amount_minor"] else None
    try:
        refund, _ = intake.refund_request_create(
            merchant_refund_id=data["merchant_refund_id"],
            provider=data["provider"],
            connector_transaction_id=data["connector_transaction_id"],
            amount=amount,
            reason=data["reason"],
            reason_code=data["reason_code"].code,
            metadata={},
            product=data["product"],
            requested_by=request.user,
            items=data.get("items") or None,
        )
    except errors.RefundError as error:
        if (error.field or "").startswith("items") and form.items is not None:
            form.items_errors.append(error.message)
        else:
            form.add_error("amount" if error.field == "amount" else None, error.message)
        return None
    return redirect("refund-detail", merchant_refund_id=refund.merchant_refund_id)


def _render_new(request, lookup, preview, form):
    shown = {}
    if preview is not None:
        currency = preview.amount.currency
        shown = {
            "amount": format_minor(preview.amount.minor_amount, currency),
            "refunded": format_minor(preview.refunded_at_provider, currency),
            "awaiting": format_minor(preview.awaiting, currency),
            "refundable": format_minor(preview.refundable_now, currency),
        }
    return render(request, "refunds/new.html", {"lookup": lookup, "preview": preview, "shown": shown, "form": form})


@login_required
def refund_detail(request, merchant_refund_id):
    refund = (
        refund_with_approvals(refund_visible_to(request.user))
        .prefetch_related("logs__actor")
        .filter(merchant_refund_id=merchant_refund_id)
        .first()
    )
    if refund is None:
        raise Http404("No such refund.")
    return render(request, "refunds/detail.html", {"refund": refund, "refresh_seconds": 3})


@login_required
def refund_list(request):
    """My requests, newest first."""
    mine = refund_visible_to(request.user).filter(requested_by=request.user).order_by("-created_at", "-id")
    page = Paginator(mine, 25).get_page(request.GET.get("page"))
    return render(request, "refunds/list.html", {"page": page})
