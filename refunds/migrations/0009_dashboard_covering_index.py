"""The reports dashboard's index: created_at with the columns its charts read (status,
currency, amount_minor, resolved_at), so daily volume and time to resolution over a range
are index-only scans instead of visits to every row's heap page (refunds/dashboard.py).

PostgreSQL only (INCLUDE); built CONCURRENTLY so a large table keeps taking writes. Not in
the model's Meta: an index with INCLUDE columns would warn on SQLite, where it is not needed."""

from django.db import migrations

INDEX = "refund_created_cover_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON refunds_refundrequest (created_at) "
            "INCLUDE (status, currency, amount_minor, resolved_at)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("refunds", "0008_reports_sales_exports")]

    operations = [migrations.RunPython(create, drop)]
