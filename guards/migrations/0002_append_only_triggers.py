"""The audit tables of risk and guards refuse UPDATE, DELETE and TRUNCATE on PostgreSQL."""

from django.db import migrations

from config.append_only import operations

TABLES = [
    "risk_riskconfigurationchange",
    "risk_tradesetuprisklog",
    "guards_platformstatechange",
    "guards_guardsettingschange",
    "guards_drawdownalert",
    "guards_closeattempt",
    "guards_guardalert",
]
forwards, backwards = operations(TABLES)


class Migration(migrations.Migration):
    dependencies = [("guards", "0001_initial"), ("risk", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
