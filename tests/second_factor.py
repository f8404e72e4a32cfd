"""The code a person reads off their authenticator, and logging in the way they would with it."""

import time

from django.urls import reverse
from django_otp.oath import TOTP

from refunds.second_factor import totp_device


def current_code(user) -> str:
    """What the user's authenticator shows now. A code already used is refused (django-otp keeps
    the last time step used), as a person typing twice within 30 s would find; then this is the
    next step's code, which the device accepts as clock drift of one step."""
    device = totp_device(user)
    assert device is not None, f"{user} has no authenticator"
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if totp.t() <= device.last_t:
        totp.time += (device.last_t + 1 - totp.t()) * device.step
    return str(totp.token()).zfill(device.digits)


def confirm_second_factor(client, user, *, next_url: str = "/refunds/"):
    """Type the current code on the confirmation page, as the person would."""
    answer = client.post(reverse("second-factor"), {"code": current_code(user), "next": next_url})
    assert answer.status_code == 302 and answer.url == next_url, answer.content[:500]
    return answer


def force_login_confirmed(client, user):
    client.force_login(user)
    confirm_second_factor(client, user)
