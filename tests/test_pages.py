"""The landing page and /healthz answer on an empty and on a synced database."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from accounts.models import TradingAccount
from accounts.services import trading_account_create
from positions.models import DispatcherHeartbeat

pytestmark = pytest.mark.django_db


def test_health_on_an_empty_database_is_not_healthy(client):
    response = client.get("/healthz")
    body = response.json()
    # nothing ticks yet: nothing is being synced
    assert response.status_code == 503
    assert body["ok"] is False and body["failing"] == ["dispatcher"]
    assert body["dispatcher"] is None


def _healthy_roster(member, n: int = 10):
    accounts = [trading_account_create(user=member, broker="mt5", broker_name="x", server="S",
                                       login=str(i), password="p") for i in range(n)]
    TradingAccount.objects.update(sync_status="healthy", last_synced_at=timezone.now())
    DispatcherHeartbeat.objects.create(name="sync", ticks=42, last_tick_at=timezone.now())
    return accounts


def test_health_counts_accounts_and_dispatcher_ticks(client, member):
    _healthy_roster(member, 1)
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True and body["failing"] == []
    assert body["checks"] == {"database": "ok", "broker": "ok", "dispatcher": "ok",
                              "stale_accounts": "ok", "terminals": "ok"}
    assert body["accounts_by_sync_status"] == {"healthy": 1}
    assert body["dispatcher"]["ticks"] == 42
    assert body["last_sync_age_seconds"] < 5


def test_health_fails_on_an_old_heartbeat(client, member):
    _healthy_roster(member)
    DispatcherHeartbeat.objects.update(last_tick_at=timezone.now() - timedelta(seconds=6))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["failing"] == ["dispatcher"]


def test_health_fails_when_too_many_accounts_are_stale(client, member):
    accounts = _healthy_roster(member)  # 10 accounts: 1 stale = 10 %, at the limit
    TradingAccount.objects.filter(pk=accounts[0].pk).update(sync_status="stale")
    assert client.get("/healthz").status_code == 200
    TradingAccount.objects.filter(pk=accounts[1].pk).update(sync_status="error")  # 20 %
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["stale_accounts"]
    assert response.json()["stale_percent"] == "20.0"


def test_health_names_a_failing_database_without_its_error_text(client, member):
    _healthy_roster(member)
    secret = "connection to 10.9.8.7 failed: password authentication failed for dbadmin"
    with mock.patch("config.health.DispatcherHeartbeat.objects.filter",
                    side_effect=OperationalError(secret)):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert "10.9.8.7" not in response.content.decode()


def test_health_fails_when_the_broker_is_down(client, member, settings):
    _healthy_roster(member)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["failing"] == ["broker"]


def test_livez_answers_without_the_database(client):
    with mock.patch("config.health.TradingAccount.objects.filter",
                    side_effect=OperationalError("down")):
        assert client.get("/livez").json() == {"ok": True}


def test_landing_page_shows_counts_and_links(client, member):
    trading_account_create(user=member, broker="mt5", broker_name="x", server="S",
                           login="1", password="p")
    page = client.get("/").content.decode()
    assert "1 pending" in page and 'href="/admin/"' in page


def test_metrics_endpoint_serves_sync_counters(client):
    assert "mt5_position_sync_total" in client.get("/metrics").content.decode()


@pytest.mark.parametrize("path", ["/", "/api/v1/positions"])
def test_a_database_outage_answers_a_json_503_with_retry_after(path, member):
    from django.test import Client

    from tests.conftest import api_client_for

    client = api_client_for(member) if path.startswith("/api/") else Client()
    client.raise_request_exception = False
    down = OperationalError("could not connect to server: Connection refused")
    with mock.patch("config.views.TradingAccount.objects.filter", side_effect=down), \
            mock.patch("rest_framework_simplejwt.authentication.JWTAuthentication.get_user",
                       side_effect=down):
        response = client.get(path)
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.json()["code"] == "service_unavailable"
    assert "Connection refused" not in response.content.decode()
