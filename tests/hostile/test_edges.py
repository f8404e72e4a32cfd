"""The cases the attack found, one by one, as a user or a sender sees them: a 4xx with a code, a
form error or a row error, and nothing written. tests/hostile/test_walk.py proves the classes
across every URL; these pin the exact answers."""

import html
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from approvals.models import Approval
from approvals.services import refund_approve
from refunds.models import RefundRequest, RefundStatus, Sale
from refunds.redaction import redact
from tests.second_factor import force_login_confirmed
from tests.factories import RefundFactory, UserFactory
from tests.hostile.values import deep_json, deep_object
from tests.refunds.test_pages import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def payment(stripe_sandbox):
    return stripe_sandbox.create_payment(12_000, metadata={"product": "Desk lamp"})


@pytest.mark.parametrize("path", ["/api/refunds/a%00b/", "/refunds/a%00b", "/api/refunds/a%00b/approve/"])
def test_a_nul_in_a_path_id_is_a_400(client, manager, path):
    client.force_login(manager)
    response = client.post(path) if path.endswith("approve/") else client.get(path)
    assert response.status_code == 400
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "invalid_characters"


@pytest.mark.parametrize("query", ["currency=%00", "q=a%00b", "status__exact=%1b", "_to_field="])
def test_a_control_character_in_an_admin_filter_is_a_400(client, manager, query):
    client.force_login(manager)
    assert client.get(f"/admin/refunds/refundrequest/?{query}").status_code == 400


@pytest.mark.parametrize("path, data", [
    ("/admin/axes/accesslog/?attempt_time__year=99999999999999999999999", None),
    ("/admin/axes/accesslog/?logout_time__gte=9999-12-31T23:59:59-12:00", None),
    ("/admin/refunds/reasoncode/", {"action": "delete_selected", "_selected_action": "9" * 30}),
    ("/admin/refunds/reasoncode/", {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": "-" + "9" * 25,
                                    "_save": "Save"}),
])
def test_numbers_and_date_times_no_column_holds_are_a_400(client, path, data):
    client.force_login(UserFactory(is_superuser=True))
    response = client.post(path, data) if data else client.get(path)
    assert response.status_code == 400


def test_a_textarea_posted_with_crlf_is_still_taken(client, manager):
    """The middleware refuses control characters, not a browser's line endings."""
    force_login_confirmed(client, manager)
    refund = RefundFactory(amount_minor=250_000)
    response = client.post("/admin/refunds/refundrequest/", {
        "action": "reject_selected", "_selected_action": [refund.pk], "comment": "line one\r\nline two",
    })
    assert response.status_code == 200  # the confirmation page, not a refusal


@pytest.mark.parametrize("body", [deep_json(), deep_object()])
def test_deep_json_is_a_400_on_create_and_approve(api, agent, manager, body):
    refund = RefundFactory(requested_by=agent, amount_minor=250_000)
    created = api(agent).post("/api/refunds/", body, content_type="application/json")
    approved = api(manager).post(f"/api/refunds/{refund.merchant_refund_id}/approve/", body, content_type="application/json")
    for response in (created, approved):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "json_too_deep"
    assert RefundRequest.objects.count() == 1 and not Approval.objects.exists()


def test_json_as_deep_as_the_limit_is_parsed(api, agent):
    nested = {"a": {"b": {"c": {"d": 1}}}}
    response = api(agent).post("/api/refunds/", json.dumps({"metadata": nested}), content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] != "json_too_deep"


@pytest.mark.parametrize("amount", ["1e999999", "-1e999999", "1e-999999", "9" * 400])
def test_a_huge_exponent_in_the_support_form_is_a_form_error(client, agent, payment, amount):
    client.force_login(agent)
    page = client.post(reverse("refund-new"), form_data(client, payment, amount=amount))
    assert page.status_code == 200 and page.context["form"].errors.get("amount")
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_report_ranges_at_the_calendars_ends_are_form_errors(client, accountant, settings, zone, day):
    settings.REPORTS_TIME_ZONE = zone
    client.force_login(accountant)
    summary = client.get(reverse("reports-summary"), {"start": day, "end": day})
    dashboard = client.get(reverse("reports-dashboard"), {"start": day, "end": day})
    sync = client.post(reverse("reports-sales-sync"), {"start": day, "end": day}, follow=True)
    assert summary.status_code == 200 and "Choose a day from 1900-01-01" in summary.content.decode()
    assert dashboard.status_code == 400 and "Choose a day from 1900-01-01" in dashboard.content.decode()
    assert sync.status_code == 200 and "Sync not started: Choose a day from 1900-01-01" in sync.content.decode()


@pytest.mark.parametrize("row, error", [
    ("S-1,2026-01-31,Mu\x00g,1.00,USD", "product contains control characters"),
    ("S-1,2026-01-31,Mug,1e999999,USD", "amount '1e999999' is not a number"),
    ("S-1,9999-12-31,Mug,1.00,USD", "Choose a day from 1900-01-01 to 9998-12-31"),
    ("S-1,9999-12-31T23:00:00-05:00,Mug,1.00,USD", "Choose a day from 1900-01-01 to 9998-12-31"),
    ("S-1,2026-01-31," + "x" * 200_000 + ",1.00,USD", "cannot be read as CSV"),
])
def test_a_bad_sales_row_is_a_row_error_and_the_list_still_opens(client, accountant, settings, row, error):
    settings.REPORTS_TIME_ZONE = "America/New_York"
    client.force_login(accountant)
    text = "sale_id,sold_at,product,amount,currency\n" + row + "\n"
    page = client.post(reverse("reports-sales-import"), {"file": SimpleUploadedFile("s.csv", text.encode(), "text/csv")})
    assert page.status_code == 200 and error in html.unescape(page.content.decode())
    assert not Sale.objects.exists()
    assert client.get(reverse("reports-sales")).status_code == 200


def test_an_approver_who_approved_a_lower_tier_cannot_then_reject(api, agent, manager):
    refund = RefundFactory(requested_by=agent, amount_minor=250_000)  # above the manager's $1,000
    refund_approve(refund_id=refund.pk, approver=manager)

    response = api(manager).post(f"/api/refunds/{refund.merchant_refund_id}/reject/", {"comment": "changed my mind"},
                                 format="json")

    assert response.status_code == 409
    assert response.json()["error"] == {"code": "already_approved", "field": None,
                                        "message": "You have already approved this refund; it needs someone else."}
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL
    assert list(refund.approvals.values_list("decision", flat=True)) == ["approved"]


@pytest.mark.parametrize("secret", ["whsec_test_refund_office_2", "sk_test_51Hx_abc_DEF", "rk_live_a_b_c", "whsec_ab+c/d=="])
def test_a_secret_is_redacted_whole(secret):
    assert redact(f"error: {secret} was refused.") == "error: [redacted] was refused."
