from django.db import migrations


class Migration(migrations.Migration):
    """Joins the three 0013 migrations made side by side (bulk refunds, disputes, Slack approvals)."""

    dependencies = [
        ("refunds", "0013_bulk_refund_batches"),
        ("refunds", "0013_disputes_dispute_state"),
        ("refunds", "0013_slack_approvals"),
    ]

    operations = []
