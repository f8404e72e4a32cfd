from django.dispatch import receiver

from refunds.models import RefundStatus
from refunds.publish import enqueue_on_commit
from refunds.services.notifications import slack_enabled
from refunds.signals import refund_status_changed

# Slack hears about the moments people act on; the internal approved → processing hop is quiet.
_NOTIFY = frozenset(RefundStatus.values) - {RefundStatus.PROCESSING}


@receiver(refund_status_changed, dispatch_uid="refunds.notify_slack_on_status_change")
def notify_slack_on_status_change(sender, refund, from_status, to_status, actor=None, **kwargs):
    if to_status not in _NOTIFY or not slack_enabled():
        return
    enqueue_on_commit("refund_notify_slack_task", refund.pk, from_status, to_status, actor.pk if actor else None)
