from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from approvals.policy import auto_approves
from refunds import errors
from refunds.services import intake, payments
from refunds.forms import PaymentLookupForm, RefundForm
from refunds.jsonlimits import MAX_JSON_DEPTH, json_too_deep
from refunds.money import CURRENCY_EXPONENTS, Money, format_minor, format_minor_number, money_locale
from refunds.providers import UnknownProvider, provider_class
from refunds.providers.base import LineItem, WebhookRejected
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


# What the confirmation page shows is signed and filed as it is: the page's hidden copies of the
# typed values only refill the form on Back, and filing never reads them.
CONFIRM_SALT = "refunds.refund-confirm"
CONFIRM_MAX_AGE = 30 * 60
_BUTTONS = ("add_item", "back", "confirm", "csrfmiddlewaretoken")


@login_required
def refund_new(request):
    """File a refund: look the payment up, show what may be refunded, fill in the refund, confirm
    the exact amount on a second page; only Confirm files."""
    if not request.user.has_perm("refunds.add_refundrequest"):
        raise Http404  # the page does not exist for roles that cannot file
    if request.method == "POST" and "confirm" in request.POST:
        return _confirm(request)
    lookup, preview = _lookup(request)
    form = None
    if preview is not None:
        form = _refund_form(request, preview)
        if form.is_bound and form.is_valid():
            return _render_confirm(request, form, preview)
    return _render_new(request, lookup, preview, form)


def _lookup(request):
    preview = None
    lookup = PaymentLookupForm(request.POST or request.GET or None)
    if lookup.is_bound and lookup.is_valid():
        try:
            preview = payments.payment_preview(**lookup.cleaned_data)
        except errors.RefundError as error:
            lookup.add_error("connector_transaction_id" if error.field else None, error.message)
    return lookup, preview


def _refund_form(request, preview, *, bound: bool = True) -> RefundForm:
    """The refund form: new (GET), refilled from the POST ("Add a row", Back), or bound to it."""
    adapter = provider_class(preview.provider)
    kwargs = {
        "dispute": _dispute_text(preview),
        "may_override_dispute": request.user.has_perm(intake.DISPUTE_OVERRIDE_PERMISSION),
        "currency": preview.amount.currency,
        # Invoice items only for providers that take them, with that provider's tax rates.
        "item_tax_rates": tuple(adapter.item_tax_rates) if adapter.supports_items else None,
    }
    if request.method != "POST":
        initial = {"merchant_refund_id": RefundForm.new_merchant_refund_id(), "provider": preview.provider,
                   "connector_transaction_id": preview.connector_transaction_id, "product": preview.product}
        return RefundForm(initial=initial, **kwargs)
    refill = "add_item" in request.POST or "back" in request.POST or not bound
    if refill:
        # Shown again as typed; nothing is checked or filed.
        rows = RefundForm.posted_item_rows(request.POST, extra="add_item" in request.POST)
        initial = {name: request.POST.get(name) for name in RefundForm.base_fields if name in request.POST}
        return RefundForm(item_rows=rows, initial=initial, **kwargs)
    return RefundForm(request.POST, refundable=preview.refundable_now, **kwargs)


def _dispute_text(preview) -> str:
    """The preview's open dispute as people read it; "" when there is none."""
    if not preview.dispute_open:
        return ""
    dispute = preview.dispute
    details = [d for d in (dispute.reason, dispute.provider_status) if d]
    details.append(format_minor(dispute.amount.minor_amount, dispute.amount.currency))
    return f"{dispute.dispute_id} ({', '.join(details)})"


def _render_confirm(request, form, preview):
    data = form.cleaned_data
    currency = preview.amount.currency
    amount_minor = data["amount_minor"] if data["amount_minor"] is not None else preview.refundable_now
    # Everything the filing uses, signed: the amount filed is the amount shown here.
    signed = signing.dumps(
        {
            "user": request.user.pk,
            "merchant_refund_id": data["merchant_refund_id"],
            "provider": data["provider"],
            "connector_transaction_id": data["connector_transaction_id"],
            "amount": Money(amount_minor, currency).as_dict(),
            "reason_code": data["reason_code"].code,
            "reason": data["reason"],
            "product": data["product"],
            "items": [item.as_dict() for item in data.get("items") or []],
            "dispute_override_reason": data.get("dispute_override_reason", ""),
        },
        salt=CONFIRM_SALT,
        compress=True,
    )
    typed = [(name, value) for name, value in request.POST.items() if name not in _BUTTONS]
    context = {
        "preview": preview,
        "signed": signed,
        "typed": typed,
        "amount": format_minor(amount_minor, currency),
        "everything": data["amount_minor"] is None,
        "payment_amount": format_minor(preview.amount.minor_amount, currency),
        "refundable": format_minor(preview.refundable_now, currency),
        "auto_approves": auto_approves(
            Money(amount_minor, currency),
            payment=payments.payment_find(
                provider=data["provider"], connector_transaction_id=data["connector_transaction_id"]
            ),
        ),
        "reason_code": data["reason_code"],
        "dispute": _dispute_text(preview),
        "data": data,
        "items": [(item, format_minor(item.cost.minor_amount, currency), format_minor(item.total_minor, currency))
                  for item in data.get("items") or []],
    }
    return render(request, "refunds/confirm.html", context)


def _confirm(request):
    """File exactly what the confirmation page showed. A second Confirm (double click, reload)
    replays the same merchant_refund_id and body, so intake returns the refund already filed."""
    try:
        signed = signing.loads(request.POST.get("confirmation", ""), salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
        if signed["user"] != request.user.pk:
            raise signing.BadSignature("another user's confirmation")
    except signing.BadSignature:  # also SignatureExpired
        return _refill_with_error(request, None, "This confirmation has expired or was changed; check the refund "
                                                 "and review it again. Nothing was filed.")
    amount = Money(**signed["amount"])
    try:
        refund, _ = intake.refund_request_create(
            merchant_refund_id=signed["merchant_refund_id"],
            provider=signed["provider"],
            connector_transaction_id=signed["connector_transaction_id"],
            amount=amount,
            reason=signed["reason"],
            reason_code=signed["reason_code"],
            metadata={},
            product=signed["product"],
            requested_by=request.user,
            items=[LineItem.from_dict(item) for item in signed["items"]] or None,
            dispute_override_reason=signed.get("dispute_override_reason", ""),
        )
    except errors.RefundError as error:
        return _refill_with_error(request, error.field, error.message)
    return redirect("refund-detail", merchant_refund_id=refund.merchant_refund_id)


def _refill_with_error(request, field, message):
    """The form as it was typed, with why it was not filed."""
    lookup, preview = _lookup(request)
    form = None
    if preview is not None:
        form = _refund_form(request, preview, bound=False)
        if (field or "").startswith("items") and form.items is not None:
            form.items_errors.append(message)
        else:
            form.refusal = message
    return _render_new(request, lookup, preview, form)


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
        decimals = CURRENCY_EXPONENTS.get(currency, 2)
        shown_number = {
            "amount_example": format_minor_number(1234 * 10**decimals + (50 if decimals == 2 else 0), currency),
            "notation": money_locale().get_display_name("en"),
            "decimals": decimals,
        }
    else:
        shown_number = {}
    return render(request, "refunds/new.html",
                  {"lookup": lookup, "preview": preview, "shown": shown, "form": form, **shown_number})


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
