"""/refunds/batches/...: bulk refunds from a CSV file. Upload → the dry run's table → confirm →
progress → results (CSV). Finance managers approve a batch's waiting rows in one confirmed step.
The work is in refunds/services/batches.py and batch_runs.py; these parse and show."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from refunds import errors
from refunds.models import RefundBatch, RefundBatchRow
from refunds.money import format_minor
from refunds.second_factor import ask_for_second_factor, session_is_fresh
from refunds.services import batch_runs, batches
from refunds.visibility import refund_batches_visible_to, sees_every_refund

ROWS_PAGE_SIZE = 100
BATCHES_PAGE_SIZE = 20
REFRESH_SECONDS = 2


class BatchUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="Columns: " + ", ".join(batches.BATCH_COLUMNS))


def _require_batches(user) -> None:
    if not (user.has_perm("refunds.add_refundrequest") or sees_every_refund(user)):
        raise PermissionDenied("You may not file bulk refunds.")


def _batch_for(request, batch_id: int) -> RefundBatch:
    batch = refund_batches_visible_to(request.user).select_related("created_by").filter(pk=batch_id).first()
    if batch is None:
        raise Http404("No such batch.")
    return batch


@login_required
@require_http_methods(["GET", "POST"])
def batch_list(request):
    _require_batches(request.user)
    problems: list[str] = []
    more = 0
    form = BatchUploadForm()
    if request.method == "POST":
        if not request.user.has_perm("refunds.add_refundrequest"):
            raise PermissionDenied("You may not file refund requests.")
        form = BatchUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > settings.REFUND_BATCH_MAX_BYTES:
                form.add_error("file", f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is "
                                       f"{settings.REFUND_BATCH_MAX_BYTES / 1024 / 1024:g} MB. Split it.")
            else:
                try:
                    batch = batches.refund_batch_create(user=request.user, data=upload.read(), file_name=upload.name)
                except batches.BatchFileError as error:
                    problems, more = error.problems, max(error.total - len(error.problems), 0)
                    form.add_error(None, f"Nothing was filed: {error.total} problem{'s' if error.total != 1 else ''} "
                                         f"in the file.")
                except errors.RefundError as error:
                    form.add_error(None, error.message)
                else:
                    return redirect("batch-detail", batch_id=batch.pk)
    visible = refund_batches_visible_to(request.user).select_related("created_by")
    page = Paginator(visible, BATCHES_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "refunds/batch_list.html", {
        "form": form, "problems": problems, "more_problems": more, "page": page,
        "columns": batches.BATCH_COLUMNS, "max_rows": settings.REFUND_BATCH_MAX_ROWS,
        "max_mb": f"{settings.REFUND_BATCH_MAX_BYTES / 1024 / 1024:g}",
        "can_upload": request.user.has_perm("refunds.add_refundrequest"),
    })


def _percent(batch: RefundBatch) -> int:
    if batch.state in (RefundBatch.State.CHECKED, RefundBatch.State.DONE):
        return 100
    if not batch.rows_total:
        return 0
    done = batch.rows_checked if batch.state == RefundBatch.State.CHECKING else batch.rows_done
    return min(99, done * 100 // batch.rows_total)


def _totals_shown(batch: RefundBatch) -> list[dict]:
    shown = []
    for currency, entry in sorted(batch.totals.items()):
        known = currency != "?"
        money = (lambda minor: format_minor(minor, currency)) if known else (lambda minor: "—")
        shown.append({
            "currency": currency,
            "auto": money(entry.get("auto", 0)), "auto_rows": entry.get("auto_rows", 0),
            "approval": money(entry.get("approval", 0)), "approval_rows": entry.get("approval_rows", 0),
            "already_rows": entry.get("already_rows", 0), "refused_rows": entry.get("refused_rows", 0),
        })
    return shown


@login_required
def batch_detail(request, batch_id: int):
    _require_batches(request.user)
    batch = _batch_for(request, batch_id)
    rows = batch.rows.select_related("refund").order_by("line")
    show = request.GET.get("show", "")
    if show in RefundBatchRow.Plan.values:
        rows = rows.filter(plan=show)
    page = Paginator(rows, ROWS_PAGE_SIZE).get_page(request.GET.get("page"))
    for row in page.object_list:
        minor = row.refund.amount_minor if row.refund_id else row.planned_minor if row.planned_minor is not None else row.amount_minor
        currency = row.refund.currency if row.refund_id else row.currency
        row.amount_shown = format_minor(minor, currency) if minor is not None and currency else (row.amount_text or "all that remains")
    working = batch.state in (RefundBatch.State.CHECKING, RefundBatch.State.FILING)
    waiting = batch_runs.refund_batch_waiting(batch) if batch.state == RefundBatch.State.DONE else None
    return render(request, "refunds/batch_detail.html", {
        "batch": batch, "page": page, "working": working, "refresh_seconds": REFRESH_SECONDS,
        "percent": _percent(batch), "totals": _totals_shown(batch), "show": show, "plans": RefundBatchRow.Plan.choices,
        "is_owner": batch.created_by_id == request.user.pk,
        "waiting_count": waiting.count() if waiting is not None else 0,
        "can_approve": request.user.has_perm("refunds.approve_refundrequest") and batch.created_by_id != request.user.pk,
    })


def _act(request, batch_id: int, service) -> RefundBatch:
    _require_batches(request.user)
    batch = _batch_for(request, batch_id)
    try:
        service(batch_id=batch.pk, user=request.user)
    except errors.RefundError as error:
        messages.error(request, error.message)
    return batch


@login_required
@require_POST
def batch_confirm(request, batch_id: int):
    batch = _act(request, batch_id, batches.refund_batch_confirm)
    return redirect("batch-detail", batch_id=batch.pk)


@login_required
@require_POST
def batch_discard(request, batch_id: int):
    batch = _act(request, batch_id, batches.refund_batch_discard)
    return redirect("batch-detail", batch_id=batch.pk)


@login_required
def batch_results(request, batch_id: int):
    _require_batches(request.user)
    batch = _batch_for(request, batch_id)
    response = StreamingHttpResponse(batches.batch_results_csv(batch), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="refund-batch-{batch.pk}-results.csv"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def batch_approve(request, batch_id: int):
    """A finance manager approves the batch's waiting rows: a confirmation page with the rows and
    their total, the second factor, then per-row outcomes."""
    if not request.user.has_perm("refunds.approve_refundrequest"):
        raise PermissionDenied("Only finance managers may approve refunds.")
    batch = _batch_for(request, batch_id)
    if batch.created_by_id == request.user.pk:
        raise PermissionDenied("Nobody approves a batch they filed.")
    if not session_is_fresh(request):
        return ask_for_second_factor(request)
    decisions = None
    if request.method == "POST":
        try:
            decisions = batch_runs.refund_batch_approve_waiting(
                batch_id=batch.pk, approver=request.user, comment=(request.POST.get("comment") or "").strip()[:500]
            )
        except errors.RefundError as error:
            messages.error(request, error.message)
            return redirect("batch-detail", batch_id=batch.pk)
    waiting = batch_runs.refund_batch_waiting(batch)
    sums = [format_minor(row["total"], row["refund__currency"])
            for row in waiting.values("refund__currency").annotate(total=Sum("refund__amount_minor")).order_by("refund__currency")]
    return render(request, "refunds/batch_approve.html", {
        "batch": batch, "waiting": waiting[:500], "waiting_count": waiting.count(), "sums": sums,
        "decisions": decisions, "approved": sum(1 for d in decisions or [] if d.approved),
    })
