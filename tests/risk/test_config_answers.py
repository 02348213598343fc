"""Risk config answers as documented (issue 16): GET includes the trading status (the
platform's kill switch); POST also answers previous_risk_percent and new_risk_percent."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from guards.services import platform_state_set

pytestmark = pytest.mark.django_db
URL = "/api/v1/risk/config"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_get_includes_the_trading_status(api, owner):
    assert api.get(URL).json()["trading_status"] == "active"
    platform_state_set(state="halted", changed_by=owner, reason="test")
    assert api.get(URL).json()["trading_status"] == "halted"


def test_post_answers_the_previous_and_new_risk_percent(owner_api):
    before = owner_api.get(URL).json()["fixed_risk_percent"]
    response = owner_api.post(URL, {"fixed_risk_percent": "2.50"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["previous_risk_percent"], body["new_risk_percent"]) == (before, "2.50")
    assert body["fixed_risk_percent"] == "2.50" and body["trading_status"] == "active"
    again = owner_api.post(f"{URL}?new_risk_percent=1.5").json()
    assert (again["previous_risk_percent"], again["new_risk_percent"]) == ("2.50", "1.50")


def test_history_shows_a_null_changed_by_for_a_change_without_a_person(owner_api):
    from risk import services

    services.risk_configuration_update(changed_by=None, source="admin",
                                       fixed_risk_percent="2.00")
    rows = owner_api.get(f"{URL}/history").json()
    assert rows[0]["changed_by"] is None
