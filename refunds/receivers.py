from django.db.models.signals import post_save
from django.dispatch import receiver

from approvals.models import Approval
from refunds.models import RefundStatus
from refunds.publish import enqueue_gathered_on_commit, enqueue_once_on_commit
from refunds.services.notifications import slack_enabled
from refunds.slack.client import slack_app_enabled
from refunds.signals import refund_status_changed

# Slack hears about the moments people act on; the internal approved → processing hop is quiet.
_NOTIFY = frozenset(RefundStatus.values) - {RefundStatus.PROCESSING}


@receiver(refund_status_changed, dispatch_uid="refunds.notify_slack_on_status_change")
def notify_slack_on_status_change(sender, refund, from_status, to_status, log, actor=None, **kwargs):
    # One message per refund per transaction (intake's new → pending_approval → approved is one),
    # published when it commits, so a failure or a final status is never held back behind anything.
    if to_status not in _NOTIFY or not slack_enabled():
        return
    enqueue_gathered_on_commit("refund_notify_slack_task", refund.pk, log.pk)


@receiver(refund_status_changed, dispatch_uid="refunds.sync_slack_approval_message")
def sync_slack_approval_message(sender, refund, from_status, to_status, actor=None, **kwargs):
    # Every change: the waiting refund's message is posted, and a posted one tells the new status.
    # The task finds out which; a refund that never waited has no message and costs one read.
    # It shows what is current, so once per refund per transaction is enough.
    if slack_app_enabled():
        enqueue_once_on_commit("slack_approval_message_sync_task", refund.pk)


@receiver(post_save, sender=Approval, dispatch_uid="refunds.sync_slack_message_on_approval")
def sync_slack_message_on_approval(sender, instance, created, **kwargs):
    # An approval at a lower tier changes no status, but the message must say who approved.
    if created and slack_app_enabled():
        enqueue_once_on_commit("slack_approval_message_sync_task", instance.refund_id)
