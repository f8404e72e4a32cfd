"""Export pages: the filter form with the user's recent exports, a job's progress page, and
the download. The work runs in a worker (refunds.reports.exports.jobs); these only parse and show."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from refunds import errors
from refunds.models import ExportJob, RefundStatus
from refunds.reports.exports import jobs as export_jobs
from refunds.reports.exports.query import FILTER_KEYS
from refunds.reports.forms import ExportForm
from refunds.visibility import export_jobs_visible_to

EXPORTS_PAGE_SIZE = 10
REFRESH_SECONDS = 2
_CONTENT_TYPES = {
    ExportJob.Format.CSV: "text/csv; charset=utf-8",
    ExportJob.Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# The refund changelist's filter parameters (refunds/admin.py list_filter and search) and the
# export filter each one means.
ADMIN_PARAMS = {
    "status__exact": "status",
    "provider": "provider",
    "currency": "currency",
    "reason_code__code__exact": "reason_code",
    "origin__exact": "origin",
    "q": "q",
}


def initial_from_query(query) -> dict:
    """Pre-fill the form from a link: the export's own field names, or the refund
    changelist's filter parameters (its "Export" buttons pass them on unchanged)."""
    initial = {}
    for name in ExportForm.base_fields:
        if name in query:
            initial[name] = query.getlist(name) if name == "status" else query.get(name)
    for param, name in ADMIN_PARAMS.items():
        if query.get(param):
            initial[name] = [query[param]] if name == "status" else query[param]
    return initial


def describe_filters(filters: dict) -> list[str]:
    """The filters as a person reads them, for the job pages."""
    labels = {name: field.label for name, field in ExportForm.base_fields.items()}
    statuses = dict(RefundStatus.choices)
    shown = []
    for key in FILTER_KEYS:
        value = filters.get(key)
        if not value:
            continue
        if key == "status":
            value = ", ".join(statuses.get(status, status) for status in value)
        shown.append(f"{labels[key]}: {value}")
    return shown


def _require_export_permission(user) -> None:
    if not user.has_perm("refunds.export_refundrequests"):
        raise PermissionDenied("You may not export refunds.")


def _job_for(request, job_id: int) -> ExportJob:
    job = export_jobs_visible_to(request.user).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such export.")
    return job


@login_required
@require_http_methods(["GET", "POST"])
def export_list(request):
    _require_export_permission(request.user)
    if request.method == "POST":
        form = ExportForm(request.POST)
        if form.is_valid():
            try:
                job = export_jobs.export_job_create(
                    user=request.user, format=form.cleaned_data["format"], filters=form.filters()
                )
            except errors.RefundError as error:
                form.add_error(None, error.message)
            else:
                return redirect("export-detail", job_id=job.pk)
    else:
        form = ExportForm(initial=initial_from_query(request.GET))
    jobs = ExportJob.objects.filter(requested_by=request.user).order_by("-created_at", "-id")
    page = Paginator(jobs, EXPORTS_PAGE_SIZE).get_page(request.GET.get("page"))
    for job in page.object_list:
        job.filters_shown = describe_filters(job.filters)
    context = {
        "form": form,
        "page": page,
        "from_admin": request.GET.get("from") == "admin",
        "settings_tz": settings.REPORTS_TIME_ZONE,
    }
    return render(request, "reports/export_list.html", context)


@login_required
def export_detail(request, job_id: int):
    _require_export_permission(request.user)
    job = _job_for(request, job_id)
    finished = job.state in (ExportJob.State.DONE, ExportJob.State.FAILED)
    context = {
        "job": job,
        "filters_shown": describe_filters(job.filters),
        "finished": finished,
        "refresh_seconds": REFRESH_SECONDS,
        "percent": _progress_percent(job),
    }
    return render(request, "reports/export_detail.html", context)


def _progress_percent(job: ExportJob) -> int:
    if job.state == ExportJob.State.DONE:
        return 100
    if not job.rows_expected:
        return 0
    return min(99, job.rows_written * 100 // job.rows_expected)


@login_required
def export_download(request, job_id: int):
    _require_export_permission(request.user)
    job = _job_for(request, job_id)
    if job.state != ExportJob.State.DONE:
        return redirect("export-detail", job_id=job.pk)
    response = StreamingHttpResponse(export_jobs.export_chunks(job), content_type=_CONTENT_TYPES[job.format])
    response["Content-Length"] = str(job.bytes_written)
    response["Content-Disposition"] = f'attachment; filename="{job.file_name}"'
    return response
