"""The Slack app's writes: the approval message of each refund (posted once when it waits, then
kept true after every decision and status change), links between Slack and app users, and the
record of each interaction Slack sent (replays decide nothing)."""

import datetime
import hashlib
import json
import logging

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from slack_sdk.errors import SlackApiError

from refunds import errors
from refunds.models import (
    RefundRequest,
    RefundStatus,
    SlackApprovalMessage,
    SlackIdentity,
    SlackInteraction,
)
from refunds.second_factor import second_factor_needed
from refunds.services.payments import payment_refundable_remaining
from refunds.slack import messages
from refunds.slack.client import SLACK_ERRORS, slack_app_enabled, web_client

logger = logging.getLogger(__name__)

LINK_SALT = "refunds.slack.link"
LINK_MAX_AGE_SECONDS = 24 * 3600
_NOT_COUNTED = [RefundStatus.REJECTED, RefundStatus.CANCELED]


def _context(refund: RefundRequest) -> messages.Context:
    earlier = (
        RefundRequest.objects.filter(payment_id=refund.payment_id, created_at__lt=refund.created_at)
        .exclude(status__in=_NOT_COUNTED)
        .aggregate(n=Count("id"), total=Sum("amount_minor"))
    )
    return messages.Context(
        earlier_count=earlier["n"] or 0,
        earlier_minor=earlier["total"] or 0,
        remaining_minor=payment_refundable_remaining(payment=refund.payment, exclude_refund_id=refund.pk),
        approvals=list(refund.approvals.select_related("approver").order_by("created_at", "id")),
    )


def approval_message_sync(*, refund_id: int) -> SlackApprovalMessage | None:
    """Post the refund's approval message when it waits and has none; otherwise bring the posted
    message up to date (decisions, tiers, final status). Renders from the database under the
    message row's lock, so two syncs never send an older picture after a newer one. Slack errors
    propagate (the task retries) and roll the claim back: a failed first post is posted again.

    The lock is held across one Slack call, bounded by SLACK_TIMEOUT_SECONDS: a message row is
    locked by nothing else, and the refund's own row is never held here."""
    if not slack_app_enabled():
        return None
    with transaction.atomic():
        refund = RefundRequest.objects.select_related("requested_by", "payment").filter(pk=refund_id).first()
        if refund is None:
            return None
        message = SlackApprovalMessage.objects.select_for_update().filter(refund=refund).first()
        if message is None:
            if refund.status != RefundStatus.PENDING_APPROVAL:
                return None  # decided (or auto-approved) before anyone needed a message
            message, _ = SlackApprovalMessage.objects.get_or_create(
                refund=refund, defaults={"channel": settings.SLACK_APPROVALS_CHANNEL}
            )
            message = SlackApprovalMessage.objects.select_for_update().get(pk=message.pk)
        payload = messages.approval_message(refund, _context(refund))
        rendered = json.dumps(payload, sort_keys=True)
        if message.ts and rendered == message.rendered:
            return message
        client = web_client()
        now = timezone.now()
        if message.ts:
            try:
                client.chat_update(channel=message.channel, ts=message.ts, text=payload["text"], blocks=payload["blocks"])
                message.updated_at = now
            except SlackApiError as error:
                if error.response.get("error") != "message_not_found":
                    raise
                message.ts = ""  # deleted in Slack: the channel gets the current picture anew
        if not message.ts:
            answer = client.chat_postMessage(channel=message.channel, text=payload["text"], blocks=payload["blocks"])
            message.ts, message.channel, message.posted_at = answer["ts"], answer["channel"], now
        message.rendered, message.error = rendered, ""
        message.save(update_fields=["ts", "channel", "posted_at", "updated_at", "rendered", "error"])
        return message


def approval_messages_missing(*, older_than_seconds: int = 60, limit: int = 100) -> list[int]:
    """Refunds awaiting approval whose message is not in Slack yet (a post that failed past its
    retries, or a lost task): the beat offers them to approval_message_sync again."""
    if not slack_app_enabled():
        return []
    cutoff = timezone.now() - datetime.timedelta(seconds=older_than_seconds)
    waiting = RefundRequest.objects.filter(status=RefundStatus.PENDING_APPROVAL, created_at__lte=cutoff)
    return list(waiting.exclude(slack_message__ts__gt="").order_by("created_at").values_list("pk", flat=True)[:limit])


def slack_ephemeral(*, channel: str, user: str, text: str) -> bool:
    """A message only `user` sees. Best effort: an answer to a click must never fail the click."""
    try:
        web_client().chat_postEphemeral(channel=channel, user=user, text=text)
    except SLACK_ERRORS:
        logger.warning("could not post an ephemeral message to %s in %s", user, channel, exc_info=True)
        return False
    return True


def slack_user_name(slack_user_id: str) -> str:
    """The person's name in Slack (users.info), to show whom a link is for; "" when Slack cannot say."""
    if not slack_app_enabled():
        return ""
    try:
        user = web_client().users_info(user=slack_user_id)["user"]
    except (*SLACK_ERRORS, KeyError, TypeError):
        return ""
    return str(user.get("real_name") or (user.get("profile") or {}).get("real_name") or user.get("name") or "")[:100]


def slack_views_open(*, trigger_id: str, view: dict) -> None:
    web_client().views_open(trigger_id=trigger_id, view=view)


def slack_interaction_claim(*, body: bytes, signature: str, kind: str, slack_user_id: str) -> bool:
    """Record a signed request once; False when these exact bytes were seen before (a replay)."""
    digest = hashlib.sha256(signature.encode() + b"\n" + body).hexdigest()
    try:
        with transaction.atomic():
            SlackInteraction.objects.create(digest=digest, kind=kind[:32], slack_user_id=slack_user_id[:32])
    except IntegrityError:
        return False
    return True


def slack_interactions_prune(*, older_than: datetime.timedelta = datetime.timedelta(hours=1)) -> int:
    """Forget requests older than any timestamp the endpoint still accepts: their replays are
    refused as stale before the replay table is consulted."""
    cutoff = timezone.now() - max(older_than, datetime.timedelta(seconds=2 * settings.SLACK_REQUEST_MAX_AGE_SECONDS))
    return SlackInteraction.objects.filter(received_at__lt=cutoff).delete()[0]


# --- Linking a Slack user to an account -------------------------------------------------------


def slack_link_token(*, slack_user_id: str, team_id: str) -> str:
    return signing.dumps({"u": slack_user_id, "t": team_id}, salt=LINK_SALT, compress=True)


def slack_link_read(token: str) -> dict:
    """{"u": Slack user id, "t": team id} from a sign-in link; raises RefundValidationError."""
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise errors.RefundValidationError(
            "This link has expired: click a button in Slack again for a new one.", code="slack_link_expired"
        ) from None
    except signing.BadSignature:
        raise errors.RefundValidationError("This link is not valid.", code="slack_link_invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not data["u"]:
        raise errors.RefundValidationError("This link is not valid.", code="slack_link_invalid")
    return data


def slack_identity_link(*, user, token: str) -> SlackIdentity:
    """Link the Slack user of the signed `token` to `user` (who just confirmed their second
    factor, so the link starts fresh). A Slack user linked to someone else stays theirs."""
    data = slack_link_read(token)
    with transaction.atomic():
        taken = SlackIdentity.objects.select_for_update().filter(slack_user_id=data["u"]).first()
        if taken is not None and taken.user_id != user.pk:
            raise errors.PermissionDenied(
                "This Slack user is already linked to another account.", code="slack_user_taken"
            )
        identity, _ = SlackIdentity.objects.update_or_create(
            user=user,
            defaults={"slack_user_id": data["u"], "team_id": str(data.get("t") or "")[:32],
                      "second_factor_at": timezone.now()},
        )
    logger.info("Slack user %s linked to %s", data["u"], user.get_username())
    return identity


def slack_identity_confirm(*, user) -> SlackIdentity | None:
    """The person confirmed with their authenticator in the app, for their decisions from Slack."""
    identity = SlackIdentity.objects.filter(user=user).first()
    if identity is not None:
        identity.second_factor_at = timezone.now()
        identity.save(update_fields=["second_factor_at"])
    return identity


def slack_identity_is_fresh(identity: SlackIdentity) -> bool:
    """As refunds.second_factor does for sessions and API tokens, for decisions from Slack."""
    if not second_factor_needed(identity.user):
        return True
    at = identity.second_factor_at
    return at is not None and 0 <= (timezone.now() - at).total_seconds() <= settings.SECOND_FACTOR_MAX_AGE_SECONDS
