"""Covering indexes for the reports dashboard (refunds/dashboard.py), so its charts over a
range are index-only scans instead of visits to every row's heap page:

- refund_created_cover_idx: created_at with status, currency, amount_minor, resolved_at
  (daily volume by status, time to resolution);
- refund_resolved_cover_idx: resolved_at with status, product, currency, amount_minor, id
  (the refunded side of refund rate by product, reports.product_refund_rates, which the
  dashboard's "top products" chart and the daily summary both read).

Over 1,000,000 refunds and a 30-day range they took those queries from ~120-180 ms to
~20-50 ms (bench/reports.py). PostgreSQL only (INCLUDE); built CONCURRENTLY so a large table
keeps taking writes. Not in the model's Meta: an index with INCLUDE columns warns on SQLite,
where it is not needed."""

from django.db import migrations

INDEXES = {
    "refund_created_cover_idx": "(created_at) INCLUDE (status, currency, amount_minor, resolved_at)",
    "refund_resolved_cover_idx": "(resolved_at) INCLUDE (status, product, currency, amount_minor, id)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, columns in INDEXES.items():
            schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON refunds_refundrequest {columns}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in INDEXES:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("refunds", "0008_reports_sales_exports")]

    operations = [migrations.RunPython(create, drop)]
