"""The second factor (TOTP, django-otp) asked of those who move money or change the approval policy.

People who may approve, reject, retry or cancel refunds, and superusers, log in with a password and
read freely; before a decision they confirm with their authenticator, and that confirmation counts
for SECOND_FACTOR_MAX_AGE_SECONDS. The time of the last check lives in the web session, or on the
API token for API calls (POST /api/second-factor/), so a stolen session cookie or token alone moves
no money once the window has passed. Wrong codes are throttled by django-otp: each failure doubles
the wait before the next try.
"""

import time
from base64 import b32encode
from urllib.parse import urlencode

import django_otp
from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from refunds import errors
from refunds.models import ApiToken

SESSION_KEY = "second_factor_at"


class SecondFactorRequired(errors.RefundError):
    code = "second_factor_required"
    http_status = 403


class SecondFactorRefused(errors.RefundError):
    code = "second_factor_invalid"
    http_status = 403  # a well-formed request a person may not make with that code


class SecondFactorThrottled(errors.RefundError):
    code = "second_factor_throttled"
    http_status = 429


def second_factor_needed(user) -> bool:
    """Whoever may move money or change the policy: superusers, approvers, those who retry/cancel."""
    return bool(
        user.is_authenticated
        and (
            user.is_superuser
            or user.has_perm("refunds.approve_refundrequest")
            or user.has_perm("refunds.retry_refundrequest")
        )
    )


def totp_device(user, *, confirmed: bool = True) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=confirmed).order_by("id").first()


def _fresh(verified_at: float | None) -> bool:
    return verified_at is not None and 0 <= time.time() - verified_at <= settings.SECOND_FACTOR_MAX_AGE_SECONDS


def session_is_fresh(request) -> bool:
    """True when this person needs no (further) check right now."""
    user = request.user
    if not second_factor_needed(user):
        return True
    verified = getattr(user, "is_verified", None)  # set by django_otp's OTPMiddleware
    return bool(verified and verified() and _fresh(request.session.get(SESSION_KEY)))


def api_request_is_fresh(request) -> bool:
    """An API call through a token counts the token's last check; one through a session, the session's."""
    if not isinstance(request.auth, ApiToken):
        return session_is_fresh(request)
    if not second_factor_needed(request.user):
        return True
    at = request.auth.second_factor_at
    return at is not None and _fresh(at.timestamp())


def second_factor_verify(*, user, code: str, device: TOTPDevice | None = None) -> TOTPDevice:
    """Check `code` against the person's authenticator (or the `device` being set up); raises
    SecondFactorThrottled while wrong codes make them wait, SecondFactorRefused for a wrong code."""
    device = device or totp_device(user)
    if device is None:
        raise SecondFactorRequired("Set up your authenticator first.", code="second_factor_not_set_up")
    allowed, detail = device.verify_is_allowed()
    if not allowed:
        raise SecondFactorThrottled(_throttled_message(detail))
    code = (code or "").strip().replace(" ", "")
    if code.isascii() and code.isdigit() and len(code) == device.digits:
        verified = device.verify_token(code)  # counts a failure itself
    else:
        verified = False
        device.throttle_increment(commit=True)  # a wrong code, whatever its shape
    if not verified:
        raise SecondFactorRefused("That code is not right: type the code your authenticator shows now.",
                                  field="code")
    return device


def _throttled_message(detail: dict | None) -> str:
    until = (detail or {}).get("locked_until")
    if until is None:
        return "Too many wrong codes: wait a moment, then try again."
    seconds = max(1, int((until - timezone.now()).total_seconds()) + 1)
    return f"Too many wrong codes: try again in {seconds} second{'' if seconds == 1 else 's'}."


def session_mark_verified(request, device: TOTPDevice) -> None:
    django_otp.login(request, device)  # request.user.is_verified() from now on, for this session
    request.session[SESSION_KEY] = time.time()


def api_token_mark_verified(*, token: ApiToken) -> None:
    token.second_factor_at = timezone.now()
    token.save(update_fields=["second_factor_at"])


def totp_enrolment_device(*, user) -> TOTPDevice:
    """The person's authenticator being set up (created on first visit; its key stays until confirmed)."""
    device = totp_device(user, confirmed=False)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def totp_secret(device: TOTPDevice) -> str:
    """The key as authenticator apps take it when typed in (base32, no padding)."""
    return b32encode(device.bin_key).decode().rstrip("=")


def totp_enrolment_confirm(*, user, device: TOTPDevice, code: str) -> TOTPDevice:
    second_factor_verify(user=user, code=code, device=device)
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return device


def ask_for_second_factor(request, next_url: str | None = None):
    """A redirect to the page that asks for the code (or sets the authenticator up), then back."""
    target = "second-factor-setup" if totp_device(request.user) is None else "second-factor"
    query = urlencode({"next": next_url or request.get_full_path()})
    return redirect(f"{reverse(target)}?{query}")
