"""The unknown-outcome state as a column: create calls whose outcome is unheard, and when a
person last checked at the provider. Until now this was counted from RefundLog rows; the
backfill counts them the same way for refunds that have no provider refund yet."""

from django.conf import settings
from django.db import migrations, models


OPEN = ("approved", "processing", "needs_attention")


def backfill(apps, schema_editor):
    RefundRequest = apps.get_model("refunds", "RefundRequest")
    RefundLog = apps.get_model("refunds", "RefundLog")
    for refund in RefundRequest.objects.filter(status__in=OPEN, connector_refund_id="").iterator():
        logs = RefundLog.objects.filter(refund=refund)
        checked = logs.filter(event="status_changed", data__outcome_checked=True).order_by("-pk").first()
        if checked is not None:
            logs = logs.filter(pk__gt=checked.pk)
        calls = logs.filter(event="provider_call").count()
        unsent = logs.filter(event="provider_error", data__not_sent=True).count()
        RefundRequest.objects.filter(pk=refund.pk).update(
            unconfirmed_calls=max(calls - unsent, 0), outcome_checked_at=checked.created_at if checked else None
        )


class Migration(migrations.Migration):

    dependencies = [
        ('refunds', '0009_dashboard_covering_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='refundrequest',
            name='outcome_checked_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='refundrequest',
            name='unconfirmed_calls',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name='refundrequest',
            index=models.Index(condition=models.Q(('unconfirmed_calls__gt', 0)), fields=['unconfirmed_calls'], name='refund_unconfirmed_idx'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
