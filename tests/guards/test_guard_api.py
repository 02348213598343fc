"""Guards API, the kill switch, period rules, races and the append-only audit tables."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from guards import services
from guards.models import (
    AccountGuardState,
    CloseRequest,
    DrawdownAlert,
    GuardAlert,
    GuardSettings,
    LiquidationEpisode,
    PlatformState,
)
from pipeline.services import accounts_sync
from tests.factories import PositionFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def critical_account(user, **kwargs):
    # peak 10,000, equity 7,500: drawdown (10,000 − 7,500) / 10,000 = 25 % ≥ 20 % critical
    account = TradingAccountFactory(user=user, peak_equity=Decimal("10000.00"),
                                    equity=Decimal("7500.00"), balance=Decimal("10000.00"),
                                    **kwargs)
    PositionFactory(account=account)  # something to close
    return account


# --- levels, period rules ---
def test_warning_then_critical_are_two_transitions(member):
    account = TradingAccountFactory(user=member, peak_equity=Decimal("10000.00"),
                                    equity=Decimal("8400.00"))  # 16 %: warning
    PositionFactory(account=account)
    services.accounts_guard(account_ids=[account.pk])
    account.equity = Decimal("7900.00")  # 21 %: critical
    account.save(update_fields=["equity"])
    services.accounts_guard(account_ids=[account.pk])
    services.accounts_guard(account_ids=[account.pk])
    assert list(DrawdownAlert.objects.filter(account=account).order_by("id").values_list(
        "level_from", "level_to")) == [("ok", "warning"), ("warning", "critical")]
    assert LiquidationEpisode.objects.filter(account=account).count() == 1


def test_a_stale_account_is_never_judged(member):
    account = critical_account(member, sync_status="stale")
    services.accounts_guard(account_ids=[account.pk])
    assert not LiquidationEpisode.objects.exists() and not DrawdownAlert.objects.exists()


def test_daily_loss_rule_stops_new_trades(member, api, sim_bridge):
    GuardSettings.objects.all().delete()
    settings_row = services.guard_settings_get()
    settings_row.daily_loss_percent = Decimal(5)
    settings_row.daily_loss_action = "stop"
    settings_row.save()
    account = TradingAccountFactory(user=member, balance=Decimal("10000.00"),
                                    equity=Decimal("10000.00"), peak_equity=Decimal("10000.00"))
    services.accounts_guard(account_ids=[account.pk])  # start of day: balance 10,000
    account.equity = Decimal("9400.00")  # below 10,000 − 5 % × 10,000 = 9,500
    account.save(update_fields=["equity"])
    services.accounts_guard(account_ids=[account.pk])

    state = AccountGuardState.objects.get(account=account)
    assert state.trading_blocked and state.breached_rules == ["daily_loss"]
    assert GuardAlert.objects.filter(account=account, kind="period_rule").count() == 1
    body = api.post("/api/v1/risk/position-size", {
        "account_id": account.pk, "signal_id": "S", "instrument": "EURUSD", "side": "buy",
        "entry_price": "1.1", "stop_loss": "1.09"}, format="json").json()
    assert body["rejection_reason"] == "trading_blocked"


def test_near_the_critical_level_the_next_sync_comes_sooner(member):
    account = TradingAccountFactory(user=member, peak_equity=Decimal("10000.00"),
                                    equity=Decimal("8150.00"),  # 18.5 %: within 2 points
                                    next_sync_at=timezone.now() + timezone.timedelta(seconds=10))
    services.accounts_guard(account_ids=[account.pk])
    account.refresh_from_db()
    assert (account.next_sync_at - timezone.now()).total_seconds() <= 1.5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_guards_at_once_open_one_episode(member):
    account = critical_account(member)
    barrier = threading.Barrier(4)

    def guard():
        barrier.wait()
        try:
            services.accounts_guard(account_ids=[account.pk])
        finally:
            connection.close()

    threads = [threading.Thread(target=guard) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert LiquidationEpisode.objects.filter(account=account).count() == 1


# --- kill switch ---
def test_only_the_owner_sets_the_platform_state(api, owner_api):
    assert api.put("/api/v1/guards/platform", {"state": "halted"}, format="json"
                   ).status_code == 403
    response = owner_api.put("/api/v1/guards/platform", {"state": "halted", "reason": "news"},
                             format="json")
    assert response.status_code == 200 and response.json()["state"] == "halted"
    assert api.get("/api/v1/guards/platform").json()["state"] == "halted"
    assert owner_api.put("/api/v1/guards/platform", {"state": "off"}, format="json"
                         ).status_code == 400


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_halted_survives_a_restart(owner):
    services.platform_state_set(state="halted", changed_by=owner, reason="test")
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    code = ("import django; django.setup(); from guards.services import platform_state_get;"
            " print(platform_state_get())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "halted"


def test_reducing_refuses_new_expected_trades(owner, owner_api, member):
    account = TradingAccountFactory(user=member)
    services.platform_state_set(state="reducing", changed_by=owner)
    response = owner_api.post("/api/v1/trades", {"account_id": account.pk, "symbol": "EURUSD",
                                                 "side": "buy", "volume": "0.1"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "platform_not_active"


# --- API ---
def test_guards_overview_ownership(api, stranger_api, owner_api, anon_api, member):
    account = critical_account(member)
    services.accounts_guard(account_ids=[account.pk])
    mine = api.get("/api/v1/guards").json()
    (row,) = mine["accounts"]
    assert row["level"] == "critical" and row["liquidation"]["status"] == "warning"
    assert row["thresholds"]["max_percent"] == "20.00"
    assert any(a["kind"] == "liquidation_countdown" for a in row["alerts"])
    assert stranger_api.get("/api/v1/guards").json()["accounts"] == []
    assert [r["account_id"] for r in owner_api.get("/api/v1/guards").json()["accounts"]] == [
        account.pk]
    assert anon_api.get("/api/v1/guards").status_code == 401


def test_manual_close_through_the_same_path(api, sim_bridge, linked_account):
    account = linked_account(9501)
    for _ in range(2):
        sim_bridge.sim("sim_open", 9501, "EURUSD", "buy", "0.10", magic=1)
    accounts_sync(account_ids=[account.pk])
    first, second = account.positions.filter(status="open").order_by("ticket")

    response = api.post("/api/v1/guards/manual-close", {"position_id": first.pk,
                                                        "reason": "taking profit"},
                        format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "done" and body["close_price"] and body["realized_pnl"]
    limited = api.post("/api/v1/guards/manual-close", {"position_id": second.pk},
                       format="json")
    assert limited.status_code == 429 and int(limited["Retry-After"]) <= 30
    assert len(sim_bridge.sim("sim_positions", 9501)) == 1


def test_manual_close_refusals(api, stranger_api, owner, member):
    account = TradingAccountFactory(user=member)
    position = PositionFactory(account=account)
    assert stranger_api.post("/api/v1/guards/manual-close", {"position_id": position.pk},
                             format="json").status_code == 404
    assert api.post("/api/v1/guards/manual-close", {"position_id": "x"},
                    format="json").status_code == 400
    account.credentials_read_only = True
    account.save(update_fields=["credentials_read_only"])
    response = api.post("/api/v1/guards/manual-close", {"position_id": position.pk},
                        format="json")
    assert response.status_code == 409 and response.json()["code"] == "read_only_account"
    services.platform_state_set(state="halted", changed_by=owner)
    response = api.post("/api/v1/guards/manual-close", {"position_id": position.pk},
                        format="json")
    assert response.json()["code"] == "platform_halted"
    assert not CloseRequest.objects.exists()


# --- append-only audit tables ---
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("table", [
    "guards_drawdownalert", "guards_closeattempt", "guards_guardalert",
    "guards_platformstatechange", "guards_guardsettingschange",
    "risk_riskconfigurationchange", "risk_tradesetuprisklog",
])
@pytest.mark.parametrize("verb", ["UPDATE {t} SET id = id", "DELETE FROM {t}",
                                  "TRUNCATE {t} CASCADE"])
def test_audit_tables_refuse_changes_on_postgres(owner, member, table, verb):
    seed_audit_rows(owner, member)  # row triggers only fire on rows: one in every table
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(verb.format(t=table))
    assert PlatformState.objects.get().state == "reducing"


def seed_audit_rows(owner, member) -> None:
    from guards.models import CloseAttempt, GuardSettingsChange
    from risk.models import RiskConfigurationChange, TradeSetupRiskLog

    now = timezone.now()
    account = critical_account(member)
    services.platform_state_set(state="reducing", changed_by=owner)
    services.accounts_guard(account_ids=[account.pk])  # DrawdownAlert, GuardAlert
    request = services.close_request_open(account=account, ticket=1, symbol="EURUSD",
                                          key="t", reason="manual")
    CloseAttempt.objects.create(close_request=request, number=1, outcome="failed",
                                duration_ms=1, created_at=now)
    GuardSettingsChange.objects.create(scope="global", previous={}, new={}, changed_by=owner,
                                       changed_at=now)
    RiskConfigurationChange.objects.create(version=2, previous={}, new={}, changed_by=owner,
                                           source="api", changed_at=now)
    TradeSetupRiskLog.objects.create(account=account, signal_id="s", instrument="EURUSD",
                                     side="buy", entry_price=1, stop_loss=1, config_version=1,
                                     global_risk_percent=3, setup_approved=False,
                                     total_volume=0, result={}, created_at=now)
