"""Every admin page as every role: a person sees the rows of the refunds they may see, and no
others, in the list, on a change page reached by id, in a search and in a raw-id picker.

Two agents (ann, bob) each filed a refund a manager rejected with a comment, and one still
pending; each has an API token. "curious" is an agent someone granted every view permission in
the admin: permissions open a page, the visibility rule still decides its rows."""

from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse

from approvals import services as approval_services
from approvals.models import Approval, ApproverLimit, AutoApproveThreshold, PendingRefund
from refunds.api.authentication import api_token_create
from refunds.models import ApiToken, Payment, ReasonCode, RefundLog, RefundRequest, WebhookEvent
from tests import factories

pytestmark = pytest.mark.django_db

ALL = {"ann", "bob", "curious"}
DENIED = None  # the page answers 403

# model -> role -> whose rows the changelist shows (DENIED: the role may not open the page)
EXPECTED = {
    RefundRequest: {"ann": {"ann"}, "bob": {"bob"}, "curious": {"curious"}, "manager": ALL, "accountant": ALL,
                    "root": ALL},
    PendingRefund: {"ann": DENIED, "bob": DENIED, "curious": DENIED, "manager": ALL, "accountant": ALL,
                    "root": ALL},
    RefundLog: {"ann": {"ann"}, "bob": {"bob"}, "curious": {"curious"}, "manager": ALL, "accountant": ALL,
                "root": ALL},
    Approval: {"ann": DENIED, "bob": DENIED, "curious": {"curious"}, "manager": ALL, "accountant": ALL,
               "root": ALL},
    Payment: {"ann": DENIED, "bob": DENIED, "curious": {"curious"}, "manager": ALL, "accountant": ALL,
              "root": ALL},
    ApiToken: {"ann": DENIED, "bob": DENIED, "curious": {"curious"}, "manager": DENIED, "accountant": DENIED,
               "root": ALL},
    # Provider events belong to no one refund: only for those who see every refund.
    WebhookEvent: {"ann": DENIED, "bob": DENIED, "curious": set(), "manager": DENIED, "accountant": DENIED,
                   "root": {"event"}},
}
# Registered models that hold no refund's data, and why they are not scoped by the rule.
NOT_REFUND_DATA = {
    ReasonCode: "the accounting's catalogue of reason codes",
    AutoApproveThreshold: "approval policy, read by approvers",
    ApproverLimit: "approval policy, read by approvers",
}
# People, groups and login records: pages whose permissions no role holds (superusers' own). A
# person's linked Slack account (refunds.slackidentity) is one: it signs their Slack decisions.
NOT_REFUND_DATA_LABELS = {"auth.user", "auth.group", "otp_totp.totpdevice", "axes.accessattempt", "axes.accesslog",
                          "axes.accessfailurelog", "refunds.slackidentity"}


def _marker(model, owner: str) -> str:
    if model is WebhookEvent:
        return "evt_marker_event"
    if model is ApiToken:
        return ApiToken.objects.get(user__username=owner).prefix
    if model in (Payment,):
        return f"pi_marker_{owner}"
    if model in (Approval, RefundLog):
        return f"secret-comment-{owner}"
    return f"mr-{owner}-"


def _row(model, owner: str):
    if model is WebhookEvent:
        return WebhookEvent.objects.get(event_id="evt_marker_event")
    if model is ApiToken:
        return ApiToken.objects.get(user__username=owner)
    if model is Payment:
        return Payment.objects.get(connector_transaction_id=f"pi_marker_{owner}")
    if model is Approval:
        return Approval.objects.get(comment=f"secret-comment-{owner}")
    if model is RefundLog:
        return RefundLog.objects.get(message=f"Rejected: secret-comment-{owner}")
    if model is PendingRefund:
        return PendingRefund.objects.get(merchant_refund_id=f"mr-{owner}-pending")
    return RefundRequest.objects.get(merchant_refund_id=f"mr-{owner}-rejected")


def _search_term(model, owner: str) -> str:
    if model is WebhookEvent:
        return "evt_marker_event"
    if model is ApiToken:
        return ApiToken.objects.get(user__username=owner).prefix
    if model is Payment:
        return f"pi_marker_{owner}"
    if model is PendingRefund:
        return f"mr-{owner}-pending"
    return f"mr-{owner}-rejected"


@pytest.fixture(autouse=True)
def _quick_passwords(settings):
    # These people log in with force_login: no need to pay for PBKDF2 six times per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(db, _quick_passwords):
    manager = factories.manager(username="manager")
    people = {
        "ann": factories.agent(username="ann"),
        "bob": factories.agent(username="bob"),
        "curious": factories.agent(username="curious"),
        "manager": manager,
        "accountant": factories.accountant(username="accountant"),
        "root": factories.UserFactory(username="root", is_superuser=True),
    }
    people["curious"].user_permissions.add(
        *Permission.objects.filter(codename__startswith="view_").exclude(codename="view_all_refundrequests")
    )
    for owner in ("ann", "bob", "curious"):
        payment = factories.PaymentFactory(connector_transaction_id=f"pi_marker_{owner}")
        rejected = factories.RefundFactory(merchant_refund_id=f"mr-{owner}-rejected", requested_by=people[owner],
                                           payment=payment)
        factories.RefundFactory(merchant_refund_id=f"mr-{owner}-pending", requested_by=people[owner],
                                payment=payment)
        approval_services.refund_reject(refund_id=rejected.pk, approver=manager, comment=f"secret-comment-{owner}")
        api_token_create(user=people[owner])
    WebhookEvent.objects.create(provider="stripe", event_id="evt_marker_event", type="charge.refunded", payload={})
    return people


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _owners_shown(model, content: str) -> set[str]:
    return {owner for owner in _owners(model) if _marker(model, owner) in content}


def _owners(model) -> set[str]:
    return {"event"} if model is WebhookEvent else ALL


def test_every_registered_admin_model_is_covered_here():
    registered = set(admin.site._registry)
    unchecked = {
        model for model in registered
        if model not in EXPECTED and model not in NOT_REFUND_DATA and model._meta.label_lower not in NOT_REFUND_DATA_LABELS
    }
    assert unchecked == set(), "a new admin page: say who sees its rows, and test it here"


@pytest.mark.parametrize("role", ["ann", "bob", "curious", "manager", "accountant", "root"])
@pytest.mark.parametrize("model", list(EXPECTED), ids=lambda m: m._meta.model_name)
def test_each_page_shows_only_rows_of_refunds_the_role_may_see(client, people, model, role):
    """The list; then each row the role may not see: by id (change and history pages) it "doesn't
    exist", and a search for it finds nothing."""
    client.force_login(people[role])

    page = client.get(_changelist(model))

    expected = EXPECTED[model][role]
    if expected is DENIED:
        assert page.status_code == 403
        return
    assert page.status_code == 200
    assert _owners_shown(model, page.content.decode()) == expected
    for owner in sorted(_owners(model) - expected):
        hidden = _row(model, owner)
        change = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[hidden.pk])
        history = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_history", args=[hidden.pk])

        by_id = client.get(change, follow=True)
        old = client.get(history, follow=True)
        searched = client.get(_changelist(model), {"q": _search_term(model, owner)})

        assert by_id.redirect_chain[-1][0] == reverse("admin:index")
        assert "doesn’t exist" in by_id.content.decode()
        assert _marker(model, owner) not in by_id.content.decode()
        assert old.redirect_chain[-1][0] == reverse("admin:index")
        assert _marker(model, owner) not in old.content.decode()
        assert searched.status_code == 200
        assert change not in searched.content.decode() and "0 results" in searched.content.decode()


@pytest.mark.parametrize("role", ["ann", "bob", "manager", "root"])
def test_a_visible_row_opens_by_id(client, people, role):
    client.force_login(people[role])
    owner = "ann" if role in ("manager", "root") else role

    page = client.get(reverse("admin:refunds_refundlog_change", args=[_row(RefundLog, owner).pk]))

    assert page.status_code == 200 and f"secret-comment-{owner}" in page.content.decode()


def test_the_raw_id_picker_of_a_log_offers_only_the_agents_refunds(client, people):
    client.force_login(people["ann"])
    query = urlencode({"_to_field": "id", "_popup": "1"})

    picker = client.get(f"{_changelist(RefundRequest)}?{query}")

    content = picker.content.decode()
    assert picker.status_code == 200
    assert "mr-ann-rejected" in content and "mr-bob-rejected" not in content and "mr-curious-" not in content


def test_autocomplete_of_people_is_for_superusers_only(client, people):
    url = reverse("admin:autocomplete")
    params = {"app_label": "approvals", "model_name": "approverlimit", "field_name": "user", "term": "a"}
    client.force_login(people["manager"])
    assert client.get(url, params).status_code == 403
    client.force_login(people["root"])
    found = client.get(url, params).json()
    assert {"ann", "manager"} <= {row["text"] for row in found["results"]}


@pytest.mark.parametrize("role", ["ann", "bob", "curious", "manager", "accountant", "root"])
def test_the_api_the_support_page_and_the_admin_agree(client, api, people, role):
    person = people[role]
    client.force_login(person)

    from_api = {row["merchant_refund_id"] for row in api(person).get("/api/refunds/").json()["results"]}
    admin_page = client.get(_changelist(RefundRequest)).content.decode()
    from_admin = {ref for ref in RefundRequest.objects.values_list("merchant_refund_id", flat=True) if ref in admin_page}
    by_id = {ref for ref in RefundRequest.objects.values_list("merchant_refund_id", flat=True)
             if client.get(reverse("refund-detail", args=[ref])).status_code == 200}

    assert from_api == from_admin == by_id
    assert {ref.split("-")[1] for ref in from_api} == EXPECTED[RefundRequest][role]
