"""The demo's people who move money have an authenticator with the key the web log prints, and the
code it gives confirms them, as the README says."""

from base64 import b32decode
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from devtools.demo.management.commands.seed_demo import DEMO_TOTP_SECRET
from refunds.second_factor import totp_device

pytestmark = pytest.mark.django_db


def test_demo_managers_confirm_with_the_printed_key(client):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    users = get_user_model().objects

    assert f"authenticator key {DEMO_TOTP_SECRET}" in out.getvalue()
    assert f"oathtool --totp -b {DEMO_TOTP_SECRET}" in out.getvalue()
    assert totp_device(users.get(username="agent")) is None
    assert totp_device(users.get(username="accountant")) is None
    for name in ("admin", "manager", "manager2"):
        client.force_login(users.get(username=name))
        code = f"{totp(b32decode(DEMO_TOTP_SECRET)):06d}"
        answer = client.post(reverse("second-factor"), {"code": code, "next": "/refunds/"})
        assert answer.status_code == 302 and answer.url == "/refunds/", name

    call_command("seed_demo", stdout=StringIO())  # again, as on every start: still one device each
    for name in ("admin", "manager", "manager2"):
        assert TOTPDevice.objects.filter(user__username=name, confirmed=True).count() == 1
