"""Force refresh means fresh (issue 16): when a sync of the account is already running,
``?force_refresh=true`` waits for it (bounded) and syncs again, so the answer's
``last_synced_at`` is never older than the request; a read that cannot be made is 503, not
old figures under 200."""

from __future__ import annotations

from datetime import datetime

import pytest

from positions import services
from positions.models import SyncLog

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_a_running_sync_is_waited_for_and_followed_by_a_fresh_one(api, linked_account,
                                                                   monkeypatch):
    account = linked_account(8301)
    # another worker's sync holds the lease: its read began before our request
    token, leased = services.sync_lease_acquire(account_ids=[account.pk])
    assert leased == [account.pk]
    waits = []

    def running_sync_ends():
        waits.append(1)
        services.sync_lease_release(token=token)

    monkeypatch.setattr(services, "_lease_wait", running_sync_ends)
    requested = datetime.now().astimezone()
    response = api.get(f"/api/v1/accounts/{account.pk}/positions?force_refresh=true")
    assert response.status_code == 200, response.content
    assert waits == [1]
    synced = datetime.fromisoformat(response.json()["sync"]["last_synced_at"])
    assert synced >= requested
    assert SyncLog.objects.filter(account=account, result="ok").count() == 1


def test_a_sync_that_outlasts_the_wait_is_503_not_old_figures(api, linked_account, settings,
                                                               monkeypatch):
    account = linked_account(8302)
    services.sync_lease_acquire(account_ids=[account.pk])
    settings.FORCE_REFRESH_WAIT_SECONDS = 0.3
    monkeypatch.setattr(services, "_lease_wait", lambda: __import__("time").sleep(0.05))
    response = api.get(f"/api/v1/accounts/{account.pk}/positions?force_refresh=true")
    assert response.status_code == 503
    assert response.json()["code"] == "refresh_busy"


def test_a_broker_that_cannot_be_read_is_503(api, linked_account, sim_bridge):
    account = linked_account(8303)
    sim_bridge.sim("sim_inject_fault", "disconnect", count=10)
    response = api.get(f"/api/v1/accounts/{account.pk}/positions?force_refresh=true")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "refresh_failed"


@pytest.mark.parametrize("value", ["", "True", "1", "yes", "perhaps"])
def test_force_refresh_takes_true_or_false_only(api, member, value):
    from tests.factories import TradingAccountFactory

    account = TradingAccountFactory(user=member)
    response = api.get(f"/api/v1/accounts/{account.pk}/positions?force_refresh={value}")
    assert response.status_code == 400
    assert api.get(f"/api/v1/accounts/{account.pk}/positions?force_refresh=false"
                   ).status_code == 200
