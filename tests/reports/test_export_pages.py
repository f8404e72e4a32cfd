"""The export pages: form, progress page, download, permissions, the admin changelist's
export buttons, and one export through a real worker."""

import csv
import io
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import openpyxl
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from refunds.models import ExportJob, RefundRequest, RefundStatus
from refunds.reports.exports import jobs as export_jobs
from tests.factories import PaymentFactory, RefundFactory, UserFactory
from tests.factories import accountant as make_accountant
from tests.factories import agent as make_agent
from tests.fixtures.worker import wait_until

pytestmark = pytest.mark.django_db
LIST = reverse("export-list")


def refund(merchant_refund_id, **fields):
    filer = get_user_model().objects.filter(username="filer").first() or make_agent(username="filer")
    fields.setdefault("requested_by", filer)
    fields.setdefault("payment", PaymentFactory(currency=fields.get("currency", "USD")))
    return RefundFactory(merchant_refund_id=merchant_refund_id, **fields)


def csv_of(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body)))


def post_export(client, django_capture_on_commit_callbacks, **data):
    data.setdefault("format", "csv")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(LIST, data)
    return response, callbacks


# --- who may ---------------------------------------------------------------------------------


def test_pages_need_a_login(client, accountant):
    job = ExportJob.objects.create(requested_by=accountant, format="csv")
    for url in (LIST, reverse("export-detail", args=[job.pk]), reverse("export-download", args=[job.pk])):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_support_agents_may_not_export(client, agent, accountant):
    job = ExportJob.objects.create(requested_by=accountant, format="csv")
    client.force_login(agent)

    assert client.get(LIST).status_code == 403
    assert client.post(LIST, {"format": "csv"}).status_code == 403
    assert client.get(reverse("export-detail", args=[job.pk])).status_code == 403
    assert client.get(reverse("export-download", args=[job.pk])).status_code == 403
    assert ExportJob.objects.count() == 1


def test_an_export_is_visible_to_its_requester_only(client, accountant, manager):
    job = ExportJob.objects.create(requested_by=accountant, format="csv", state=ExportJob.State.DONE)
    client.force_login(manager)  # may export, but this is not theirs

    assert client.get(reverse("export-detail", args=[job.pk])).status_code == 404
    assert client.get(reverse("export-download", args=[job.pk])).status_code == 404
    assert f"/reports/exports/{job.pk}/" not in client.get(LIST).content.decode()

    client.force_login(UserFactory(username="root", is_superuser=True))
    assert client.get(reverse("export-detail", args=[job.pk])).status_code == 200


# --- the form --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"requested_from": "2026-03-10", "requested_to": "2026-03-09"}, "The end date is before the start date."),
        ({"resolved_from": "2026-03-10", "resolved_to": "2026-03-01"}, "The end date is before the start date."),
        ({"status": ["succeeded", "lost"]}, "Select a valid choice. lost is not one of the available choices."),
        ({"currency": "XXX"}, "Select a valid choice. XXX is not one of the available choices."),
        ({"requested_from": "10/03/2026x"}, "Enter a valid date."),
        ({"format": "pdf"}, "Select a valid choice. pdf is not one of the available choices."),
    ],
)
def test_form_errors_are_shown_and_nothing_is_queued(client, accountant, django_capture_on_commit_callbacks, data, message):
    refund("usd")
    client.force_login(accountant)

    response, callbacks = post_export(client, django_capture_on_commit_callbacks, **data)

    assert response.status_code == 200
    assert message in unescape(response.content.decode())
    assert not ExportJob.objects.exists() and not callbacks


def test_export_from_the_page_queues_shows_progress_then_downloads(client, accountant, django_capture_on_commit_callbacks):
    refund("ok-1", status=RefundStatus.SUCCEEDED, currency="JPY", amount_minor=700)
    refund("ok-2", status=RefundStatus.FAILED)
    client.force_login(accountant)
    form = client.get(LIST)
    assert form.status_code == 200 and 'name="csrfmiddlewaretoken"' in form.content.decode()

    response, callbacks = post_export(
        client, django_capture_on_commit_callbacks, status=["succeeded"], requested_from="2020-01-01"
    )

    job = ExportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("export-detail", args=[job.pk])
    assert len(callbacks) == 1  # the worker's task, sent after commit
    assert job.filters == {"status": ["succeeded"], "requested_from": "2020-01-01"}
    waiting = client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' in waiting and "Queued" in waiting and "<progress" in waiting
    assert "Status: Succeeded" in waiting and "Requested from: 2020-01-01" in waiting
    assert client.get(reverse("export-download", args=[job.pk])).url == response.url  # not ready yet

    export_jobs.export_job_run(job_id=job.pk)

    ready = client.get(response.url).content.decode()
    assert '<meta http-equiv="refresh"' not in ready and "Ready" in ready and "1 of 1 rows" in ready
    download = client.get(reverse("export-download", args=[job.pk]))
    job.refresh_from_db()
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == f'attachment; filename="{job.file_name}"'
    assert int(download["Content-Length"]) == job.bytes_written
    [row] = csv_of(download)
    assert (row["merchant_refund_id"], row["amount"], row["currency"]) == ("ok-1", "700", "JPY")
    listed = client.get(LIST).content.decode()
    assert reverse("export-download", args=[job.pk]) in listed and "Status: Succeeded" in listed


def test_a_failed_export_says_why(client, accountant):
    job = ExportJob.objects.create(
        requested_by=accountant, format="xlsx", state=ExportJob.State.FAILED, error="The export failed: disk full"
    )
    client.force_login(accountant)

    page = client.get(reverse("export-detail", args=[job.pk])).content.decode()

    assert "Failed" in page and "The export failed: disk full" in page and '<meta http-equiv="refresh"' not in page


def test_recent_exports_are_paginated(client, accountant):
    for _ in range(12):
        ExportJob.objects.create(requested_by=accountant, format="csv")
    client.force_login(accountant)

    first, second = client.get(LIST), client.get(LIST, {"page": 2})

    assert len(first.context["page"].object_list) == 10 and "Page 1 of 2" in first.content.decode()
    assert len(second.context["page"].object_list) == 2


# --- from the admin's refund list ------------------------------------------------------------


def test_admin_export_buttons_carry_the_lists_filters(client, accountant, agent, django_capture_on_commit_callbacks):
    refund("mug-jpy", currency="JPY", status=RefundStatus.SUCCEEDED, product="Blue mug", reason_code_id="goodwill")
    refund("mug-jpy-failed", currency="JPY", status=RefundStatus.FAILED, product="Blue mug")
    refund("mug-usd", currency="USD", status=RefundStatus.SUCCEEDED, product="Blue mug")
    refund("lamp-jpy", currency="JPY", status=RefundStatus.SUCCEEDED, product="Lamp")
    changelist = reverse("admin:refunds_refundrequest_changelist")
    client.force_login(accountant)

    page = client.get(changelist, {"status__exact": "succeeded", "currency": "JPY", "q": "mug"})

    html = page.content.decode()
    assert [r.merchant_refund_id for r in page.context["cl"].result_list] == ["mug-jpy"]
    href = unescape(re.search(r'href="([^"]+)" data-testid="export-xlsx"', html).group(1))
    assert urlsplit(href).path == LIST
    assert parse_qs(urlsplit(href).query)["format"] == ["xlsx"]
    form_page = client.get(href)
    initial = form_page.context["form"].initial
    assert {k: initial[k] for k in ("status", "currency", "q", "format")} == {
        "status": ["succeeded"], "currency": "JPY", "q": "mug", "format": "xlsx"
    }
    shown = form_page.content.decode()
    assert re.search(r'value="succeeded"[^>]*checked', shown) and re.search(r'value="JPY"[^>]*selected', shown)
    assert "The filters of the refund list are filled in below" in shown

    response, _ = post_export(client, django_capture_on_commit_callbacks, **initial)
    job = ExportJob.objects.get()
    assert job.format == "xlsx" and job.filters == {"status": ["succeeded"], "currency": "JPY", "q": "mug"}
    export_jobs.export_job_run(job_id=job.pk)
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(export_jobs.export_chunks(job))), read_only=True).active
    assert [row[0] for row in sheet.iter_rows(values_only=True)] == ["merchant_refund_id", "mug-jpy"]

    client.force_login(agent)
    assert "Export CSV" not in client.get(changelist).content.decode()


def test_admin_reason_and_origin_filters_map_too(client, accountant):
    client.force_login(accountant)
    changelist = client.get(
        reverse("admin:refunds_refundrequest_changelist"),
        {"reason_code__code__exact": "goodwill", "origin__exact": "external", "provider": "stripe"},
    ).content.decode()
    href = unescape(re.search(r'href="([^"]+)" data-testid="export-csv"', changelist).group(1))

    initial = client.get(href).context["form"].initial

    assert {k: initial[k] for k in ("reason_code", "origin", "provider", "format")} == {
        "reason_code": "goodwill", "origin": "external", "provider": "stripe", "format": "csv"
    }


# --- through a real worker -------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_export_made_on_the_page_is_written_by_the_worker(live_worker, client):
    exporter = make_accountant(username="accountant-live")
    for n in range(30):
        refund(f"live-{n:02d}", currency="KWD", amount_minor=1000 + n, status=RefundStatus.SUCCEEDED)
    refund("live-other", currency="USD")
    client.force_login(exporter)

    response = client.post(LIST, {"format": "csv", "currency": "KWD"})

    job = ExportJob.objects.get()
    assert response.url == reverse("export-detail", args=[job.pk])
    wait_until(
        lambda: ExportJob.objects.filter(pk=job.pk, state__in=["done", "failed"]).exists(),
        timeout=60, message="the export to be written",
    )
    job.refresh_from_db()
    assert job.state == "done", job.error
    page = client.get(response.url).content.decode()
    assert "Ready" in page and reverse("export-download", args=[job.pk]) in page
    rows = csv_of(client.get(reverse("export-download", args=[job.pk])))
    assert [(r["merchant_refund_id"], r["amount"]) for r in rows] == [(f"live-{n:02d}", f"1.{n:03d}") for n in range(30)]
    assert RefundRequest.objects.count() == 31
