"""The unknown-outcome state as a column: create calls whose outcome is unheard, and when a
person last checked at the provider. Until now this was counted from RefundLog rows; the
backfill counts them the same way for refunds that have no provider refund yet.

Also: the core keeps no Stripe knowledge. ReasonCode.stripe_reason goes (the Stripe adapter maps
codes, REASON_BY_CODE plus STRIPE_REASON_BY_CODE), and a refund's provider has no "stripe" default."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
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


# The Stripe adapter's own table when this migration was written (refunds/providers/stripe.py).
_ADAPTER_REASONS = {
    "duplicate_charge": "duplicate",
    "product_return": "requested_by_customer",
    "service_cancellation": "requested_by_customer",
    "goodwill": "requested_by_customer",
    "fraud": "fraudulent",
}


def refuse_to_forget_stripe_reasons(apps, schema_editor):
    """A code whose Stripe reason was set in the admin, and that neither the adapter's table nor
    STRIPE_REASON_BY_CODE carries, would silently stop telling Stripe its reason: stop instead,
    and say what to set."""
    ReasonCode = apps.get_model("refunds", "ReasonCode")
    configured = {**_ADAPTER_REASONS, **getattr(settings, "STRIPE_REASON_BY_CODE", {})}
    lost = {
        code: reason
        for code, reason in ReasonCode.objects.exclude(stripe_reason="").values_list("code", "stripe_reason")
        if configured.get(code) != reason
    }
    if lost:
        value = ",".join(f"{code}={reason}" for code, reason in sorted(lost.items()))
        raise ImproperlyConfigured(
            f"Reason codes with a Stripe reason set in the admin: set STRIPE_REASON_BY_CODE={value} "
            "(the Stripe adapter maps codes now), then migrate again."
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
            field=models.PositiveSmallIntegerField(db_default=0, default=0),
        ),
        migrations.AddIndex(
            model_name='refundrequest',
            index=models.Index(condition=models.Q(('unconfirmed_calls__gt', 0)), fields=['unconfirmed_calls'], name='refund_unconfirmed_idx'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(refuse_to_forget_stripe_reasons, migrations.RunPython.noop),
        migrations.RemoveField(model_name="reasoncode", name="stripe_reason"),
        migrations.AlterField(model_name="refundrequest", name="provider", field=models.CharField(max_length=32)),
        migrations.AddConstraint(
            model_name="refundrequest",
            constraint=models.CheckConstraint(condition=~models.Q(provider=""), name="refund_provider_named"),
        ),
    ]
