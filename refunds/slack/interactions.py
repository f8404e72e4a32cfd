"""POST /slack/interactions: button clicks and modal submissions from Slack.

Order of checks: the request is signed with the signing secret (v0, HMAC-SHA256 of
"v0:{timestamp}:{body}") and not older than SLACK_REQUEST_MAX_AGE_SECONDS; the exact bytes were
never seen before (a row per request in SlackInteraction); the Slack user is linked to an app user
whose second factor is fresh. Decisions then go through approvals.services, the same door as the
admin and the API, so every rule of the policy applies. Anything refused is told to the person in
an ephemeral message (or on the modal's field), never dropped silently."""

import json
import logging
import time
from urllib.parse import parse_qs, urlencode

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from slack_sdk.signature import SignatureVerifier

from approvals import services as approval_services
from refunds import errors
from refunds.models import RefundRequest, RefundStatus, SlackIdentity
from refunds.services import slack_approvals
from refunds.slack import messages
from refunds.slack.client import SLACK_ERRORS

logger = logging.getLogger(__name__)


def refused(code: str, status: int = 401) -> JsonResponse:
    return JsonResponse({"error": code}, status=status)


def verify(request) -> tuple[dict | None, JsonResponse | None]:
    """The parsed payload of a genuine, fresh request; or the refusal to answer with."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp") or ""
    signature = request.headers.get("X-Slack-Signature") or ""
    if not timestamp or not signature:
        return None, refused("signature_missing")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return None, refused("timestamp_invalid")
    if abs(time.time() - int(timestamp)) > settings.SLACK_REQUEST_MAX_AGE_SECONDS:
        return None, refused("timestamp_stale")
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return None, refused("signature_invalid")
    verifier = SignatureVerifier(settings.SLACK_SIGNING_SECRET)
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        return None, refused("signature_invalid")
    try:
        payload = json.loads(parse_qs(body).get("payload", [""])[0])
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), dict):
        return None, refused("payload_invalid", status=400)
    return payload, None


def text_of(value) -> str:
    return value if isinstance(value, str) else ""


def obj(payload: dict, key: str) -> dict:
    """A nested object of the payload, or {} when it is missing or of another shape."""
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _refund_id(value) -> int | None:
    value = text_of(value).split(":")[0]
    return int(value) if value.isascii() and value.isdigit() and len(value) < 18 else None


def _link_url(slack_user_id: str, team_id: str) -> str:
    token = slack_approvals.slack_link_token(slack_user_id=slack_user_id, team_id=team_id)
    return f"{settings.SITE_URL}{reverse('slack-link')}?{urlencode({'t': token})}"


def _confirm_url() -> str:
    return settings.SITE_URL + reverse("slack-confirm")


def _decider(payload: dict) -> tuple[object | None, str]:
    """The app user behind the Slack user, or None and what to tell them."""
    slack_user_id = text_of(payload["user"].get("id"))
    team_id = text_of(obj(payload, "team").get("id"))
    identity = SlackIdentity.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    if identity is None:
        return None, (
            "Your Slack account is not linked to Refund Office, so it cannot decide refunds yet. "
            f"<{_link_url(slack_user_id, team_id)}|Sign in to Refund Office to link it> (once), then click again."
        )
    if not identity.user.is_active:
        return None, "Your Refund Office account is disabled."
    if not slack_approvals.slack_identity_is_fresh(identity):
        minutes = settings.SECOND_FACTOR_MAX_AGE_SECONDS // 60
        return None, (
            f"Decisions need a confirmation with your authenticator from the last {minutes} minutes. "
            f"<{_confirm_url()}|Confirm in Refund Office>, then click again."
        )
    return identity.user, ""


def _decide(*, refund_id: int, user, reject: bool, comment: str) -> tuple[bool, str]:
    """(decided, what to tell the person); every rule is the approvals service's."""
    try:
        if reject:
            refund = approval_services.refund_reject(refund_id=refund_id, approver=user, comment=comment)
        else:
            refund = approval_services.refund_approve(refund_id=refund_id, approver=user, comment=comment)
    except RefundRequest.DoesNotExist:
        return False, "This refund no longer exists."
    except errors.InvalidTransition as error:
        if error.code == "not_awaiting_approval":
            current = RefundRequest.objects.filter(pk=refund_id).first()
            return False, f"Already decided: {current} is {current.get_status_display().lower()}."
        return False, error.message
    except errors.RefundError as error:
        return False, error.message
    name = refund.merchant_refund_id
    if reject:
        return True, f"You rejected {name}."
    if refund.status == RefundStatus.PENDING_APPROVAL:
        return True, f"Your approval of {name} is recorded; it needs an approver with a higher limit."
    return True, f"You approved {name}."


def _channel(payload: dict) -> str:
    return (
        text_of(obj(payload, "channel").get("id"))
        or text_of(obj(payload, "container").get("channel_id"))
        or settings.SLACK_APPROVALS_CHANNEL
    )


def block_actions(payload: dict) -> HttpResponse:
    actions = payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    action_id, refund_id = text_of(action.get("action_id")), _refund_id(action.get("value"))
    channel, slack_user_id = _channel(payload), text_of(payload["user"].get("id"))

    def tell(text):
        slack_approvals.slack_ephemeral(channel=channel, user=slack_user_id, text=text)
        return HttpResponse(status=200)

    if action_id not in (messages.APPROVE, messages.APPROVE_WITH_COMMENT, messages.REJECT) or refund_id is None:
        return HttpResponse(status=200)  # not one of ours (links, future buttons)
    user, problem = _decider(payload)
    if user is None:
        return tell(problem)
    if action_id == messages.APPROVE:
        return tell(_decide(refund_id=refund_id, user=user, reject=False, comment="")[1])
    refund = RefundRequest.objects.filter(pk=refund_id).first()
    if refund is None:
        return tell("This refund no longer exists.")
    if refund.status != RefundStatus.PENDING_APPROVAL:
        return tell(f"Already decided: {refund} is {refund.get_status_display().lower()}.")
    if not user.has_perm("refunds.approve_refundrequest"):
        return tell("Only finance managers may approve or reject refunds.")
    view = messages.decision_modal(refund=refund, reject=action_id == messages.REJECT)
    view["private_metadata"] = f"{refund.pk}:{channel}"
    try:
        slack_approvals.slack_views_open(trigger_id=text_of(payload.get("trigger_id")), view=view)
    except SLACK_ERRORS:
        logger.warning("views.open failed for refund %s", refund.pk, exc_info=True)
        return tell("Slack could not open the form; click the button again.")
    return HttpResponse(status=200)


def view_submission(payload: dict) -> HttpResponse:
    view = obj(payload, "view")
    callback_id = text_of(view.get("callback_id"))
    if callback_id not in (messages.APPROVE_WITH_COMMENT, messages.REJECT):
        return HttpResponse(status=200)
    reject = callback_id == messages.REJECT
    block = messages.REASON_BLOCK if reject else messages.COMMENT_BLOCK
    metadata = text_of(view.get("private_metadata"))
    refund_id, channel = _refund_id(metadata), metadata.partition(":")[2] or settings.SLACK_APPROVALS_CHANNEL
    values = obj(obj(view, "state"), "values")
    field = obj(obj(values, block), messages.TEXT_ACTION)
    text = text_of(field.get("value")).strip()

    def field_error(message):
        return JsonResponse({"response_action": "errors", "errors": {block: message[:150]}})

    if refund_id is None:
        return field_error("This form is not about a refund.")
    user, problem = _decider(payload)
    if user is None:
        slack_approvals.slack_ephemeral(channel=channel, user=text_of(payload["user"].get("id")), text=problem)
        return field_error(problem.split(" <")[0])
    decided, told = _decide(refund_id=refund_id, user=user, reject=reject, comment=text[:1000])
    if not decided:
        return field_error(told)
    slack_approvals.slack_ephemeral(channel=channel, user=text_of(payload["user"].get("id")), text=told)
    return HttpResponse(status=200)
