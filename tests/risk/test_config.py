"""The global risk configuration: owner-only changes, bounds, audit, cache versioning, and a
change made in one process seen by another at once."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from config.append_only import AppendOnlyError
from risk.models import RiskConfiguration, RiskConfigurationChange
from risk.services import risk_configuration_get, risk_configuration_update

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_defaults_come_from_the_environment(api):
    body = api.get("/api/v1/risk/config").json()
    # DEFAULT_FIXED_RISK_PERCENT=3.0, splits 50/35/15, MARGIN_BUFFER_PERCENT=20
    assert body["fixed_risk_percent"] == "3.00"
    assert (body["entry_split_1_percent"], body["entry_split_2_percent"],
            body["entry_split_3_percent"]) == ("50.00", "35.00", "15.00")
    assert body["margin_buffer_percent"] == "20.00"


def test_anonymous_reads_nothing(anon_api):
    assert anon_api.get("/api/v1/risk/config").status_code == 401


def test_only_the_owner_changes_it(api, owner_api):
    response = api.post("/api/v1/risk/config", {"fixed_risk_percent": "5"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert owner_api.post("/api/v1/risk/config", {"fixed_risk_percent": "5"},
                          format="json").json()["fixed_risk_percent"] == "5.00"
    assert api.get("/api/v1/risk/config").json()["fixed_risk_percent"] == "5.00"


@pytest.mark.parametrize(("value", "status"), [
    ("0.1", 200), ("50", 200), ("0.09", 422), ("50.01", 422), ("-1", 422), ("abc", 422),
    ("NaN", 422),
])
def test_bounds_are_0_1_to_50(owner_api, value, status):
    response = owner_api.post("/api/v1/risk/config", {"fixed_risk_percent": value},
                              format="json")
    assert response.status_code == status, response.json()
    if status == 422 and response.json()["code"] == "out_of_bounds":
        assert response.json()["detail"]["min"] == "0.1"
        assert response.json()["detail"]["max"] == "50"


def test_the_seeds_query_parameter_form(owner_api):
    response = owner_api.post("/api/v1/risk/config?new_risk_percent=2.5")
    assert response.status_code == 200 and response.json()["fixed_risk_percent"] == "2.50"
    assert owner_api.post("/api/v1/risk/config?new_risk_percent=60").status_code == 422


def test_splits_must_sum_to_100(owner_api):
    response = owner_api.post("/api/v1/risk/config",
                              {"entry_split_1_percent": "60"}, format="json")
    assert response.status_code == 422 and response.json()["code"] == "invalid_splits"
    ok = owner_api.post("/api/v1/risk/config", {"entry_split_1_percent": "60",
                                                "entry_split_3_percent": "5"}, format="json")
    assert ok.status_code == 200


def test_every_change_is_audited(owner_api, owner, api):
    owner_api.post("/api/v1/risk/config", {"fixed_risk_percent": "4"}, format="json")
    owner_api.post("/api/v1/risk/config", {"margin_buffer_percent": "30"}, format="json")
    owner_api.post("/api/v1/risk/config", {"fixed_risk_percent": "99"}, format="json")  # 422

    history = owner_api.get("/api/v1/risk/config/history").json()

    assert [h["version"] for h in history] == [3, 2]
    latest = history[0]
    assert latest["previous"]["margin_buffer_percent"] == "20.00"
    assert latest["new"]["margin_buffer_percent"] == "30.00"
    assert latest["changed_by"] == "owner" and latest["source"] == "api"
    assert api.get("/api/v1/risk/config/history").status_code == 403


def test_history_rows_are_append_only(owner):
    risk_configuration_update(changed_by=owner, source="api", fixed_risk_percent=Decimal("4"))
    change = RiskConfigurationChange.objects.get()
    with pytest.raises(AppendOnlyError):
        change.save()
    with pytest.raises(AppendOnlyError):
        RiskConfigurationChange.objects.all().delete()


def test_a_cached_reader_sees_the_new_version(owner, django_capture_on_commit_callbacks):
    before = risk_configuration_get()  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        risk_configuration_update(changed_by=owner, source="api",
                                  fixed_risk_percent=Decimal("7"))
    after = risk_configuration_get()
    assert (before.fixed_risk_percent, after.fixed_risk_percent) == (Decimal("3.00"),
                                                                     Decimal("7.00"))
    assert after.version == before.version + 1


@pytest.mark.django_db(transaction=True)
def test_a_change_in_one_process_is_seen_by_another_at_once(owner, settings):
    risk_configuration_get()
    other = _other_process_reads()
    assert other == "3.00"
    risk_configuration_update(changed_by=owner, source="api", fixed_risk_percent=Decimal("6"))
    assert _other_process_reads() == "6.00"


def _other_process_reads() -> str:
    db = connection.settings_dict
    env = dict(os.environ)
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        pytest.skip("a second process cannot open the in-memory test database; "
                    "run with PostgreSQL")
    code = ("import django; django.setup(); from risk.services import risk_configuration_get;"
            " print(risk_configuration_get().fixed_risk_percent)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={
        **env, "DJANGO_SETTINGS_MODULE": "config.settings"}, capture_output=True, text=True,
        timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_the_database_allows_one_row_only(owner):
    risk_configuration_get()
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        RiskConfiguration.objects.create(pk=2, fixed_risk_percent=1, entry_split_1_percent=100,
                                         entry_split_2_percent=0, entry_split_3_percent=0,
                                         margin_buffer_percent=20)


def test_the_admin_saves_through_the_same_validation_and_audit(admin_client, owner):
    risk_configuration_get()
    url = "/admin/risk/riskconfiguration/1/change/"
    form = {"fixed_risk_percent": "60", "entry_split_1_percent": "50",
            "entry_split_2_percent": "35", "entry_split_3_percent": "15",
            "margin_buffer_percent": "20"}
    refused = admin_client.post(url, form)
    assert refused.status_code == 200  # the form again, with the error
    assert RiskConfiguration.objects.get().fixed_risk_percent == Decimal("3.00")
    accepted = admin_client.post(url, {**form, "fixed_risk_percent": "2"})
    assert accepted.status_code == 302
    assert RiskConfiguration.objects.get().fixed_risk_percent == Decimal("2.00")
    assert RiskConfigurationChange.objects.get().source == "admin"
