"""On PostgreSQL, the reconciliation log refuses UPDATE, DELETE and TRUNCATE in the
database itself, whatever the client. (SQLite, the embedded default, relies on the model
guard.) Only a superuser session with ``session_replication_role = replica`` skips it:
the test harness does that to empty its scratch database between tests."""

from django.db import migrations

TABLE = "reconciliation_reconciliationlog"

CREATE = f"""
CREATE OR REPLACE FUNCTION reconciliation_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reconciliation_log_no_update_delete
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION reconciliation_log_append_only();
CREATE TRIGGER reconciliation_log_no_truncate
    BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_log_append_only();
"""
DROP = f"""
DROP TRIGGER IF EXISTS reconciliation_log_no_truncate ON {TABLE};
DROP TRIGGER IF EXISTS reconciliation_log_no_update_delete ON {TABLE};
DROP FUNCTION IF EXISTS reconciliation_log_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
