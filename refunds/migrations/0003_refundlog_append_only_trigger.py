"""RefundLog is append-only in PostgreSQL itself: a trigger refuses UPDATE and DELETE of a row,
whatever the client (admin, shell, a stray script). TRUNCATE, an owner's deliberate act, stays
possible (the test suite empties tables with it)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION refunds_refundlog_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'refunds_refundlog is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER refunds_refundlog_append_only
    BEFORE UPDATE OR DELETE ON refunds_refundlog
    FOR EACH ROW EXECUTE FUNCTION refunds_refundlog_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS refunds_refundlog_append_only ON refunds_refundlog;
DROP FUNCTION IF EXISTS refunds_refundlog_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("refunds", "0002_external_refunds_webhook_events")]
    operations = [migrations.RunPython(forwards, backwards)]
