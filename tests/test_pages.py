"""The landing page and /healthz answer on an empty and on a synced database."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import TradingAccount
from accounts.services import trading_account_create
from positions.models import DispatcherHeartbeat

pytestmark = pytest.mark.django_db


def test_health_on_an_empty_database(client):
    body = client.get("/healthz").json()
    assert body["ok"] is True and body["dispatcher"] is None


def test_health_counts_accounts_and_dispatcher_ticks(client, member):
    account = trading_account_create(user=member, broker="mt5", broker_name="x", server="S",
                                     login="1", password="p")
    TradingAccount.objects.filter(pk=account.pk).update(
        sync_status="healthy", last_synced_at=timezone.now())
    DispatcherHeartbeat.objects.create(name="sync", ticks=42, last_tick_at=timezone.now())
    body = client.get("/healthz").json()
    assert body["accounts_by_sync_status"] == {"healthy": 1}
    assert body["dispatcher"]["ticks"] == 42
    assert body["last_sync_age_seconds"] < 5


def test_landing_page_shows_counts_and_links(client, member):
    trading_account_create(user=member, broker="mt5", broker_name="x", server="S",
                           login="1", password="p")
    page = client.get("/").content.decode()
    assert "1 pending" in page and 'href="/admin/"' in page


def test_metrics_endpoint_serves_sync_counters(client):
    assert "mt5_position_sync_total" in client.get("/metrics").content.decode()
