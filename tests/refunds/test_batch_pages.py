"""The bulk refund pages and API as their users meet them: upload, errors by line, the dry-run table,
confirm, results CSV, who sees what, the manager's approve step behind the second factor; the API's
status codes."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from approvals.models import AutoApproveThreshold
from refunds.models import RefundBatch, RefundRequest, RefundStatus
from refunds.services import batch_runs
from tests import factories
from tests.refunds.test_batches import HEADER, csv_bytes
from tests.second_factor import confirm_second_factor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def threshold(db):
    AutoApproveThreshold.objects.create(currency="USD", max_minor_amount=5000)


def post_file(client, data: bytes, name="outage.csv"):
    return client.post("/refunds/batches/", {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def test_an_agent_uploads_reads_the_dry_run_confirms_and_downloads_the_results(client, agent, stripe_sandbox,
                                                                                published_tasks,
                                                                                django_capture_on_commit_callbacks):
    pi = stripe_sandbox.create_payment(10_000)
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):
        answer = post_file(client, csv_bytes(f"p-1,stripe,{pi},20.00,USD,,Outage,", f"p-2,stripe,{pi},90.00,USD,,,"))
    batch = RefundBatch.objects.get()
    assert answer.status_code == 302 and answer.url == f"/refunds/batches/{batch.pk}/"
    assert published_tasks == [("refund_batch_run_task", (batch.pk,))]

    checking = client.get(answer.url).content.decode()
    assert "Checking (dry run)" in checking and 'http-equiv="refresh"' in checking
    batch_runs.refund_batch_run(batch_id=batch.pk)
    page = client.get(answer.url).content.decode()
    assert "Checked: waiting for confirmation" in page and 'http-equiv="refresh"' not in page
    assert "2 of 2 rows checked" in page
    assert "20.00 USD (1)" in page  # the auto-approved total
    assert "over-refund: 90.00 USD exceeds what remains refundable (80.00 USD) after line 2 of this file." in page
    assert not RefundRequest.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(f"/refunds/batches/{batch.pk}/confirm")
    assert confirmed.status_code == 302
    batch_runs.refund_batch_run(batch_id=batch.pk)
    done = client.get(f"/refunds/batches/{batch.pk}/").content.decode()
    assert "Download results (CSV)" in done
    results = client.get(f"/refunds/batches/{batch.pk}/results.csv")
    body = b"".join(results.streaming_content).decode()
    assert results["Content-Type"].startswith("text/csv")
    assert f"2,p-1,stripe,{pi},20.00,USD,auto,filed,approved" in body
    assert RefundRequest.objects.get().merchant_refund_id == "p-1"


def test_a_bad_file_is_a_form_error_with_line_numbers_never_a_500(client, agent):
    client.force_login(agent)
    answer = post_file(client, csv_bytes("a,stripe,pi_1,1.00,USD,,,", "b,stripe", ",stripe,pi_3,1.00,USD,,,"))
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "Nothing was filed: 2 problems in the file." in page
    assert "Line 3: 2 values for 8 columns." in page and "Line 4: merchant_refund_id is empty." in page
    assert not RefundBatch.objects.exists()


def test_a_file_over_the_limit_is_a_form_error(client, agent, settings):
    settings.REFUND_BATCH_MAX_BYTES = 50
    client.force_login(agent)
    page = post_file(client, csv_bytes("a,stripe,pi_1,1.00,USD,,,")).content.decode()
    assert "the limit is" in page and not RefundBatch.objects.exists()


def test_people_see_their_own_batches_and_those_who_see_every_refund_see_all(client, agent, accountant):
    other = factories.agent(username="other")
    batch = RefundBatch.objects.create(created_by=other, rows_total=0)
    client.force_login(agent)
    assert client.get(f"/refunds/batches/{batch.pk}/").status_code == 404
    assert client.get(f"/refunds/batches/{batch.pk}/results.csv").status_code == 404
    assert client.post(f"/refunds/batches/{batch.pk}/confirm").status_code == 404
    client.force_login(accountant)  # sees every refund, files none
    assert client.get(f"/refunds/batches/{batch.pk}/").status_code == 200
    assert post_file(client, csv_bytes("a,stripe,pi_1,1.00,USD,,,")).status_code == 403
    client.force_login(factories.UserFactory())
    assert client.get("/refunds/batches/").status_code == 403


def test_only_the_uploader_confirms(client, agent, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client.force_login(agent)
    post_file(client, csv_bytes(f"q-1,stripe,{pi},1.00,USD,,,"))
    batch = RefundBatch.objects.get()
    batch_runs.refund_batch_run(batch_id=batch.pk)
    client.force_login(manager)
    answer = client.post(f"/refunds/batches/{batch.pk}/confirm", follow=True)
    assert "Only the person who uploaded a batch may file it." in answer.content.decode()
    batch.refresh_from_db()
    assert batch.state == "checked"


def test_a_manager_approves_the_waiting_rows_after_the_second_factor(client, agent, manager, stripe_sandbox):
    pis = [stripe_sandbox.create_payment(100_000) for _ in range(2)]
    client.force_login(agent)
    post_file(client, csv_bytes(f"w-1,stripe,{pis[0]},100.00,USD,,,", f"w-2,stripe,{pis[1]},200.00,USD,,,"))
    batch = RefundBatch.objects.get()
    batch_runs.refund_batch_run(batch_id=batch.pk)
    client.post(f"/refunds/batches/{batch.pk}/confirm")
    batch_runs.refund_batch_run(batch_id=batch.pk)
    assert client.get(f"/refunds/batches/{batch.pk}/approve").status_code == 403  # not a manager

    client.force_login(manager)
    asked = client.get(f"/refunds/batches/{batch.pk}/approve")
    assert asked.status_code == 302 and "/accounts/second-factor/" in asked.url
    confirm_second_factor(client, manager, next_url=f"/refunds/batches/{batch.pk}/approve")
    page = client.get(f"/refunds/batches/{batch.pk}/approve").content.decode()
    assert "2 rows filed by agent wait for a finance manager: <strong class=\"money\">300.00 USD</strong>" in page
    done = client.post(f"/refunds/batches/{batch.pk}/approve", {"comment": "outage"}).content.decode()

    assert "2 of 2 rows approved." in done
    assert set(RefundRequest.objects.values_list("status", flat=True)) == {RefundStatus.APPROVED}


def test_a_manager_cannot_approve_their_own_batch_on_the_page(client, manager, stripe_sandbox):
    pi = stripe_sandbox.create_payment(100_000)
    client.force_login(manager)
    confirm_second_factor(client, manager)
    post_file(client, csv_bytes(f"m-1,stripe,{pi},100.00,USD,,,"))
    batch = RefundBatch.objects.get()
    batch_runs.refund_batch_run(batch_id=batch.pk)
    client.post(f"/refunds/batches/{batch.pk}/confirm")
    batch_runs.refund_batch_run(batch_id=batch.pk)

    assert client.post(f"/refunds/batches/{batch.pk}/approve").status_code == 403
    assert RefundRequest.objects.get().status == RefundStatus.PENDING_APPROVAL


# --- the API -------------------------------------------------------------------------------


def test_the_api_takes_a_csv_body_and_files_only_after_confirm(api, agent, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    client = api(agent)
    created = client.post("/api/refund-batches/", csv_bytes(f"x-1,stripe,{pi},5.00,USD,,,"), content_type="text/csv")
    assert created.status_code == 201, created.content
    batch_id = created.json()["id"]
    assert created.json()["state"] == "checking" and created.json()["rows_total"] == 1

    early = client.post(f"/api/refund-batches/{batch_id}/confirm/")
    assert early.status_code == 409 and early.json()["error"]["code"] == "batch_not_checked"
    batch_runs.refund_batch_run(batch_id=batch_id)
    checked = client.get(f"/api/refund-batches/{batch_id}/").json()
    assert checked["state"] == "checked" and checked["totals"]["USD"]["auto"] == 500
    assert client.post(f"/api/refund-batches/{batch_id}/confirm/").status_code == 202
    batch_runs.refund_batch_run(batch_id=batch_id)
    assert client.get(f"/api/refund-batches/{batch_id}/").json()["state"] == "done"
    results = client.get(f"/api/refund-batches/{batch_id}/results/")
    assert f"2,x-1,stripe,{pi},5.00,USD,auto,filed,approved" in b"".join(results.streaming_content).decode()


@pytest.mark.parametrize(
    "body, content_type, status, code",
    [
        (b"", "text/csv", 400, "batch_file_invalid"),
        (HEADER.replace(",", "\t").encode() + b"a\tstripe\tpi_1\t\t\t\t\t\n", "text/csv", 400, "batch_file_invalid"),
        (b'{"rows": []}', "application/json", 415, "unsupported_media_type"),
    ],
    ids=["empty", "tabs", "json"],
)
def test_the_api_refuses_bad_files_with_a_code(api, agent, body, content_type, status, code):
    answer = api(agent).post("/api/refund-batches/", body, content_type=content_type)
    assert answer.status_code == status, answer.content
    assert answer.json()["error"]["code"] == code
    assert not RefundBatch.objects.exists()


def test_the_api_says_where_a_file_is_wrong_and_refuses_one_too_large(api, agent, settings):
    wrong = api(agent).post("/api/refund-batches/", csv_bytes("a,stripe,pi_1", "b,stripe,pi_2,1.00,USD,,,"),
                            content_type="text/csv")
    assert wrong.json()["error"]["message"] == "Nothing was filed. Line 2: 3 values for 8 columns."
    settings.REFUND_BATCH_MAX_BYTES = 40
    big = api(agent).post("/api/refund-batches/", csv_bytes("a,stripe,pi_1,1.00,USD,,,"), content_type="text/csv")
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"


def test_the_api_hides_other_peoples_batches_and_refuses_those_who_file_nothing(api, agent, accountant):
    other = RefundBatch.objects.create(created_by=factories.agent(username="other"))
    assert api(agent).get(f"/api/refund-batches/{other.pk}/").status_code == 404
    assert api(agent).post(f"/api/refund-batches/{other.pk}/confirm/").status_code == 404
    refused = api(accountant).post("/api/refund-batches/", csv_bytes("a,stripe,pi_1,1.00,USD,,,"), content_type="text/csv")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert api().get(f"/api/refund-batches/{other.pk}/").status_code == 401
