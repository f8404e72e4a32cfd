"""/accounts/second-factor/: confirm with the authenticator (and set it up), then back to `next`."""

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from refunds import second_factor
from refunds.second_factor import SecondFactorRefused, SecondFactorThrottled


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator", max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def _next_url(request) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if "\x00" not in wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("refund-list")


def _check(request, form, *, device=None, confirm: bool = False):
    """The device the code matched, or None with the reason on the form."""
    if not form.is_valid():
        return None
    try:
        if confirm:
            return second_factor.totp_enrolment_confirm(user=request.user, device=device,
                                                        code=form.cleaned_data["code"])
        return second_factor.second_factor_verify(user=request.user, code=form.cleaned_data["code"])
    except (SecondFactorRefused, SecondFactorThrottled) as error:
        form.add_error("code", error.message)
        form.throttled = isinstance(error, SecondFactorThrottled)
        return None


@login_required
def second_factor_view(request):
    next_url = _next_url(request)
    if second_factor.totp_device(request.user) is None:
        return second_factor.ask_for_second_factor(request, next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST":
        device = _check(request, form)
        if device is not None:
            second_factor.session_mark_verified(request, device)
            return redirect(next_url)
    context = {"form": form, "next": next_url, "max_age_minutes": settings.SECOND_FACTOR_MAX_AGE_SECONDS // 60}
    return render(request, "registration/second_factor.html", context,
                  status=429 if getattr(form, "throttled", False) else 200)


@login_required
def second_factor_setup_view(request):
    next_url = _next_url(request)
    if second_factor.totp_device(request.user) is not None:
        # Replacing a confirmed authenticator is a superuser's job (delete the device in the admin):
        # a stolen password alone must not be enough to enrol a new one.
        return render(request, "registration/second_factor_setup.html", {"already": True, "next": next_url})
    device = second_factor.totp_enrolment_device(user=request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST":
        confirmed = _check(request, form, device=device, confirm=True)
        if confirmed is not None:
            second_factor.session_mark_verified(request, confirmed)
            return redirect(next_url)
    context = {"form": form, "next": next_url, "uri": device.config_url, "secret": second_factor.totp_secret(device)}
    return render(request, "registration/second_factor_setup.html", context)
