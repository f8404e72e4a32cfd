"""The Slack app's endpoints: interactions (from Slack), and two pages people open from Slack's
links: linking their Slack user to their account, and confirming their second factor for Slack."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from refunds import errors, second_factor
from refunds.models import SlackIdentity
from refunds.services import slack_approvals
from refunds.slack import interactions


@csrf_exempt  # Slack signs its requests instead (interactions.verify)
@require_POST
def slack_interactions(request):
    if not settings.SLACK_SIGNING_SECRET:
        return HttpResponse(status=404)
    payload, refusal = interactions.verify(request)
    if refusal is not None:
        return refusal
    kind = interactions.text_of(payload.get("type"))
    claimed = slack_approvals.slack_interaction_claim(
        body=request.body, signature=request.headers["X-Slack-Signature"], kind=kind,
        slack_user_id=interactions.text_of(payload["user"].get("id")),
    )
    if not claimed:
        return interactions.refused("replayed", status=409)
    if kind == "block_actions":
        return interactions.block_actions(payload)
    if kind == "view_submission":
        return interactions.view_submission(payload)
    return HttpResponse(status=200)


def _needs_confirmation(request):
    return second_factor.second_factor_needed(request.user) and not second_factor.session_is_fresh(request)


@login_required
@require_http_methods(["GET", "POST"])
def slack_link(request):
    token = request.POST.get("t") or request.GET.get("t") or ""
    context = {"token": token, "identity": SlackIdentity.objects.filter(user=request.user).first()}
    try:
        context["link"] = slack_approvals.slack_link_read(token)
    except errors.RefundError as error:
        return render(request, "slack/link.html", {**context, "error": error.message}, status=400)
    if _needs_confirmation(request):
        return second_factor.ask_for_second_factor(request)
    context["slack_name"] = slack_approvals.slack_user_name(context["link"]["u"])
    if request.method == "POST":
        try:
            context["linked"] = slack_approvals.slack_identity_link(user=request.user, token=token)
        except errors.RefundError as error:
            return render(request, "slack/link.html", {**context, "error": error.message}, status=409)
    return render(request, "slack/link.html", {**context, "max_age_minutes": settings.SECOND_FACTOR_MAX_AGE_SECONDS // 60})


@login_required
@require_http_methods(["GET", "POST"])
def slack_confirm(request):
    identity = SlackIdentity.objects.filter(user=request.user).first()
    if _needs_confirmation(request):
        return second_factor.ask_for_second_factor(request)
    confirmed = False
    if request.method == "POST" and identity is not None:
        identity = slack_approvals.slack_identity_confirm(user=request.user)
        confirmed = True
    until = None
    if identity is not None and identity.second_factor_at:
        until = identity.second_factor_at + timezone.timedelta(seconds=settings.SECOND_FACTOR_MAX_AGE_SECONDS)
    return render(request, "slack/confirm.html", {
        "identity": identity, "confirmed": confirmed, "until": until,
        "fresh": identity is not None and slack_approvals.slack_identity_is_fresh(identity),
    })
