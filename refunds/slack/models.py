"""Rows of the Slack app. Imported by refunds.models (the app's models module); they name other
models by string so this module imports nothing of the project."""

from django.conf import settings
from django.db import models


class SlackIdentity(models.Model):
    """The Slack user a person linked to their account themselves, through a signed sign-in link.
    Decisions from Slack act as this user; a display name never maps anyone."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_identity")
    slack_user_id = models.CharField(max_length=32, unique=True)
    team_id = models.CharField(max_length=32, blank=True)
    linked_at = models.DateTimeField(auto_now_add=True)
    # When the person last confirmed with their authenticator for Slack (like ApiToken.second_factor_at):
    # decisions from Slack count this, and a stale one answers with a link to confirm in the app.
    second_factor_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "Slack identity"
        verbose_name_plural = "Slack identities"

    def __str__(self):
        return f"{self.slack_user_id} → {self.user}"


class SlackApprovalMessage(models.Model):
    """The approvals-channel message of one refund. The row is the claim to post it (one per
    refund); `ts` is empty until Slack accepted the post."""

    refund = models.OneToOneField("refunds.RefundRequest", on_delete=models.CASCADE, related_name="slack_message")
    channel = models.CharField(max_length=32)
    ts = models.CharField(max_length=32, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    # The text last sent, so a sync that would change nothing makes no call.
    rendered = models.TextField(blank=True)
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["ts"], name="slack_message_ts_idx")]


class SlackInteraction(models.Model):
    """Each signed request from Slack, once: a replay of the same bytes meets this row and decides nothing."""

    digest = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=32)
    slack_user_id = models.CharField(max_length=32, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)


class SlackReminder(models.Model):
    """One reminder per refund and threshold; the row is the claim (any number of beats send it once)."""

    refund = models.ForeignKey("refunds.RefundRequest", on_delete=models.CASCADE, related_name="slack_reminders")
    threshold_minutes = models.PositiveIntegerField()
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["refund", "threshold_minutes"], name="slack_reminder_once"),
        ]
