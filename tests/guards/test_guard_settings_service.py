"""Guard settings change only through the service, which audits (issue 14): the admin calls
``guard_settings_update`` / ``guard_override_update`` and never writes audit rows itself."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from guards.models import GuardOverride, GuardSettings, GuardSettingsChange
from guards.services import guard_override_update, guard_settings_get, guard_settings_update
from tests.factories import TradingAccountFactory

pytestmark = pytest.mark.django_db


def test_a_change_is_saved_and_audited_once(owner):
    guard_settings_get()
    row = guard_settings_update(changed_by=owner, max_drawdown_percent=Decimal("25.00"))
    assert row.max_drawdown_percent == Decimal("25.00")
    change = GuardSettingsChange.objects.get()
    assert change.scope == "global" and change.changed_by == owner
    assert change.previous["max_drawdown_percent"] == "20.00"
    assert change.new["max_drawdown_percent"] == "25.00"


def test_saving_the_same_values_writes_no_audit_row(owner):
    current = guard_settings_get().max_drawdown_percent
    guard_settings_update(changed_by=owner, max_drawdown_percent=current)
    assert not GuardSettingsChange.objects.exists()


def test_a_bad_value_or_field_changes_nothing(owner):
    guard_settings_get()
    with pytest.raises(ValidationError):
        guard_settings_update(changed_by=owner, max_drawdown_percent=Decimal("25"),
                              day_timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown guard settings"):
        guard_settings_update(changed_by=owner, no_such_setting=1)
    assert GuardSettings.objects.get().max_drawdown_percent == Decimal("20.00")
    assert not GuardSettingsChange.objects.exists()


def test_an_override_is_audited_under_its_account(owner):
    account = TradingAccountFactory()
    guard_override_update(account_id=account.pk, changed_by=owner,
                          max_drawdown_percent=Decimal("10.00"))
    assert GuardOverride.objects.get(account=account).max_drawdown_percent == Decimal("10.00")
    change = GuardSettingsChange.objects.get()
    assert change.scope == f"account:{account.pk}"
    assert change.previous["max_drawdown_percent"] is None
    assert change.new["max_drawdown_percent"] == "10.00"


def test_the_admin_saves_through_the_service(admin_client, admin_user):
    guard_settings_get()
    url = f"/admin/guards/guardsettings/{GuardSettings.objects.get().pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    data = {name: "" if value is None else value for name, value in form.initial.items()
            if name in form.fields}
    data["max_drawdown_percent"] = "22.50"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert GuardSettings.objects.get().max_drawdown_percent == Decimal("22.50")
    change = GuardSettingsChange.objects.get()  # exactly one: the service's
    assert change.changed_by == admin_user and change.new["max_drawdown_percent"] == "22.50"
