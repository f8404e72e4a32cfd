"""The second factor in the back office: a finance manager reads freely, but approves, rejects,
retries or cancels only after confirming with their authenticator within the last
SECOND_FACTOR_MAX_AGE_SECONDS; a superuser likewise before changing the approval policy."""

import time
from base64 import b32decode
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals.models import AutoApproveThreshold
from refunds.models import RefundStatus
from refunds.second_factor import SESSION_KEY, totp_device
from tests import factories
from tests.factories import RefundFactory
from tests.second_factor import confirm_second_factor, current_code

pytestmark = pytest.mark.django_db
QUEUE = reverse("admin:approvals_pendingrefund_changelist")
CONFIRM = reverse("second-factor")


def _approve(client, refund):
    return client.post(QUEUE, {"action": "approve_selected", "_selected_action": [refund.pk], "confirm": "yes",
                               "comment": "ok"})


def _sent_to_confirm(response, next_url: str, page: str = CONFIRM) -> bool:
    where = urlparse(response.url)
    return response.status_code == 302 and where.path == page and parse_qs(where.query)["next"] == [next_url]


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**len(code):0{len(code)}d}"


def test_an_unconfirmed_manager_reads_but_cannot_approve(client, manager, agent):
    refund = RefundFactory(requested_by=agent, amount_minor=9000)
    client.force_login(manager)

    queue = client.get(QUEUE)
    detail = client.get(reverse("admin:refunds_refundrequest_change", args=[refund.pk]))
    approve = _approve(client, refund)

    assert queue.status_code == 200 and refund.merchant_refund_id in queue.content.decode()
    assert detail.status_code == 200
    assert _sent_to_confirm(approve, QUEUE)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL


@pytest.mark.parametrize("action", ["approve_selected", "reject_selected", "retry_selected", "cancel_selected"])
def test_every_money_action_asks_first(client, manager, agent, action):
    refund = RefundFactory(requested_by=agent, status=RefundStatus.PENDING_APPROVAL)
    changelist = reverse("admin:refunds_refundrequest_changelist")
    client.force_login(manager)

    answer = client.post(changelist, {"action": action, "_selected_action": [refund.pk], "confirm": "yes",
                                      "comment": "because"})

    assert _sent_to_confirm(answer, changelist)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL and not refund.approvals.exists()


def test_the_confirmation_page_sends_the_manager_back_and_then_approving_works(client, manager, agent):
    refund = RefundFactory(requested_by=agent, amount_minor=9000)
    client.force_login(manager)
    asked = _approve(client, refund)

    page = client.get(asked.url)
    back = client.post(asked.url, {"code": current_code(manager), "next": QUEUE})
    approved = _approve(client, refund)

    assert page.status_code == 200 and "Confirm with your authenticator" in page.content.decode()
    assert back.status_code == 302 and back.url == QUEUE
    assert approved.status_code == 302 and approved.url.startswith(QUEUE)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.APPROVED


def test_after_the_window_the_manager_is_asked_again(client, manager, agent, settings):
    settings.SECOND_FACTOR_MAX_AGE_SECONDS = 15 * 60
    first, second = (RefundFactory(requested_by=agent, amount_minor=9000) for _ in range(2))
    client.force_login(manager)
    confirm_second_factor(client, manager)
    assert _approve(client, first).url.startswith(QUEUE)

    session = client.session
    session[SESSION_KEY] = time.time() - (15 * 60 + 1)  # the check was made 15 minutes and a second ago
    session.save()
    asked = _approve(client, second)

    assert _sent_to_confirm(asked, QUEUE)
    second.refresh_from_db()
    assert second.status == RefundStatus.PENDING_APPROVAL
    confirm_second_factor(client, manager, next_url=QUEUE)
    assert _approve(client, second).url.startswith(QUEUE)
    second.refresh_from_db()
    assert second.status == RefundStatus.APPROVED


def test_the_window_is_a_setting(client, manager, agent, settings):
    refund = RefundFactory(requested_by=agent, amount_minor=9000)
    client.force_login(manager)
    confirm_second_factor(client, manager)
    session = client.session
    session[SESSION_KEY] = time.time() - 120
    session.save()

    settings.SECOND_FACTOR_MAX_AGE_SECONDS = 60
    assert _sent_to_confirm(_approve(client, refund), QUEUE)
    settings.SECOND_FACTOR_MAX_AGE_SECONDS = 300
    assert _approve(client, refund).url.startswith(QUEUE)


def test_a_wrong_code_is_refused_and_moves_no_money(client, manager, agent):
    refund = RefundFactory(requested_by=agent, amount_minor=9000)
    client.force_login(manager)

    refused = client.post(CONFIRM, {"code": _wrong(current_code(manager)), "next": QUEUE})
    letters = client.post(CONFIRM, {"code": "abcdef", "next": QUEUE})

    assert refused.status_code in (200, 429) and "not right" in refused.content.decode()
    assert letters.status_code in (200, 429)
    assert _sent_to_confirm(_approve(client, refund), QUEUE)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING_APPROVAL


def test_wrong_codes_make_the_next_try_wait(client, manager):
    client.force_login(manager)
    device = totp_device(manager)

    client.post(CONFIRM, {"code": _wrong(current_code(manager)), "next": QUEUE})
    right_too_soon = client.post(CONFIRM, {"code": current_code(manager), "next": QUEUE})

    assert right_too_soon.status_code == 429
    assert "Too many wrong codes" in right_too_soon.content.decode()
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # tries during the wait are not even checked
    # The wait (1 s, then 2 s, 4 s, ... after each failure) has passed:
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=device.throttling_failure_timestamp
                                                   - timedelta(seconds=10))
    accepted = client.post(CONFIRM, {"code": current_code(manager), "next": QUEUE})
    assert accepted.status_code == 302 and accepted.url == QUEUE


def test_a_code_is_used_once(client, manager, agent):
    client.force_login(manager)
    code = current_code(manager)
    assert client.post(CONFIRM, {"code": code, "next": QUEUE}).status_code == 302

    session = client.session
    session[SESSION_KEY] = time.time() - 3600
    session.save()
    again = client.post(CONFIRM, {"code": code, "next": QUEUE})

    assert again.status_code == 200 and "not right" in again.content.decode()


def test_next_never_leaves_the_site(client, manager):
    client.force_login(manager)

    answer = client.post(CONFIRM, {"code": current_code(manager), "next": "https://evil.example/"})

    assert answer.status_code == 302 and answer.url == reverse("refund-list")


def test_a_manager_without_an_authenticator_sets_one_up_then_approves(client, agent):
    newcomer = factories.manager(username="newcomer", authenticator=False)
    refund = RefundFactory(requested_by=agent, amount_minor=9000)
    client.force_login(newcomer)

    asked = _approve(client, refund)
    assert _sent_to_confirm(asked, QUEUE, page=reverse("second-factor-setup"))
    setup = client.get(asked.url)
    content = setup.content.decode()
    secret = content.split('id="totp-secret">')[1].split("<")[0]
    assert f"otpauth://totp/Refund%20Office%3Anewcomer?secret={secret}" in content

    # The person adds the key to their app and types what it shows.
    code = TOTP(_base32_key(secret)).token()
    wrong = client.post(asked.url, {"code": _wrong(f"{code:06d}"), "next": QUEUE})
    assert "not right" in wrong.content.decode() and totp_device(newcomer) is None
    TOTPDevice.objects.filter(user=newcomer).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    done = client.post(asked.url, {"code": f"{code:06d}", "next": QUEUE})

    assert done.status_code == 302 and done.url == QUEUE
    assert totp_device(newcomer) is not None
    assert _approve(client, refund).url.startswith(QUEUE)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.APPROVED


def _base32_key(secret: str) -> bytes:
    return b32decode(secret + "=" * (-len(secret) % 8))


def test_a_confirmed_authenticator_is_not_replaced_by_whoever_has_the_password(client, manager):
    client.force_login(manager)

    page = client.get(reverse("second-factor-setup"))

    assert "already set up" in page.content.decode() and "otpauth://" not in page.content.decode()
    assert TOTPDevice.objects.filter(user=manager).count() == 1


def test_changing_the_policy_asks_the_superuser_first(client):
    root = factories.UserFactory(username="root", is_superuser=True)
    threshold = AutoApproveThreshold.objects.create(currency="USD", max_minor_amount=5000)
    add = reverse("admin:approvals_autoapprovethreshold_add")
    change = reverse("admin:approvals_autoapprovethreshold_change", args=[threshold.pk])
    delete = reverse("admin:approvals_autoapprovethreshold_delete", args=[threshold.pk])
    client.force_login(root)

    listed = client.get(reverse("admin:approvals_autoapprovethreshold_changelist"))
    asked_add = client.get(add)
    posted = client.post(change, {"currency": "USD", "max_minor_amount": "999999"})
    deleted = client.post(delete, {"post": "yes"})

    assert listed.status_code == 200
    assert _sent_to_confirm(asked_add, add) and _sent_to_confirm(posted, change) and _sent_to_confirm(deleted, delete)
    threshold.refresh_from_db()
    assert threshold.max_minor_amount == 5000
    confirm_second_factor(client, root, next_url=change)
    saved = client.post(change, {"currency": "USD", "max_minor_amount": "6000"})
    assert saved.status_code == 302
    threshold.refresh_from_db()
    assert threshold.max_minor_amount == 6000


def test_making_someone_an_approver_asks_first(client, agent):
    root = factories.UserFactory(username="root", is_superuser=True)
    change = reverse("admin:auth_user_change", args=[agent.pk])
    client.force_login(root)

    assert _sent_to_confirm(client.get(change), change)
    assert _sent_to_confirm(client.get(reverse("admin:auth_group_add")), reverse("admin:auth_group_add"))


def test_agents_and_accountants_are_never_asked(client, agent, accountant):
    for person in (agent, accountant):
        client.force_login(person)
        assert client.get(reverse("refund-list")).status_code == 200
        assert client.get(reverse("admin:refunds_refundrequest_changelist")).status_code == 200
    assert totp_device(agent) is None and totp_device(accountant) is None
