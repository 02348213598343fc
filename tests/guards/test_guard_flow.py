"""The guards on the real database, against the simulated terminal behind the real bridge:
the 2017-04-23 weekend gap takes a SELL account past its critical drawdown; the episode
warns, re-checks with a fresh read, and closes everything exactly once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import TradingAccount
from brokers import mt5_api
from guards import services
from guards.models import (
    CloseAttempt,
    CloseRequest,
    DrawdownAlert,
    GuardAlert,
    GuardOverride,
    LiquidationEpisode,
)
from pipeline import services as pipeline
from pipeline.services import accounts_sync

pytestmark = pytest.mark.django_db

FRIDAY_2000 = 59  # bar index of 2017-04-21 20:00 (close 1.07268); the next bar gaps +1.55 %


def sync(account: TradingAccount) -> TradingAccount:
    accounts_sync(account_ids=[account.pk])
    account.refresh_from_db()
    return account


@pytest.fixture
def gapped(sim_bridge, linked_account):
    """A USD 10,000 account holding a 1.20-lot SELL into the weekend gap, synced before and
    after: the SELL loses about (1.08942 − 1.07041) × 100,000 × 1.2 ≈ 2,281 USD, a
    drawdown near 22.8 % of the 10,000 peak: past the 20 % critical level."""
    account = linked_account(9401)
    sim_bridge.sim("sim_advance", FRIDAY_2000)
    ticket = int(sim_bridge.sim("sim_open", 9401, "EURUSD", "sell", "1.20", magic=1))
    account = sync(account)
    assert account.drawdown_percent < Decimal(1)
    sim_bridge.sim("sim_advance", 1)
    account = sync(account)
    return account, ticket


def test_the_gap_opens_one_episode_and_alerts_once(gapped):
    account, _ = gapped
    assert account.drawdown_percent > Decimal(20)
    episode = LiquidationEpisode.objects.get(account=account)
    assert (episode.status, episode.reason) == ("warning", "drawdown_critical")
    assert list(DrawdownAlert.objects.filter(account=account).values_list(
        "level_from", "level_to")) == [("ok", "critical")]
    countdown = GuardAlert.objects.get(account=account, kind="liquidation_countdown")
    assert countdown.payload["positions"][0]["volume"] == "1.2000"
    # more cycles while still critical: no new alert, no second episode
    sync(account)
    sync(account)
    assert DrawdownAlert.objects.filter(account=account).count() == 1
    assert LiquidationEpisode.objects.filter(account=account).count() == 1


def test_still_critical_after_the_delay_closes_everything_once(gapped, sim_bridge):
    account, ticket = gapped
    episode = LiquidationEpisode.objects.get(account=account)

    assert pipeline.liquidation_recheck(episode_id=episode.pk) == "liquidating"
    assert pipeline.liquidation_recheck(episode_id=episode.pk) == "not_pending"  # a 2nd beat
    (request,) = CloseRequest.objects.filter(account=account)
    assert services.close_request_execute(close_request_id=request.pk) == "done"
    assert services.close_request_execute(close_request_id=request.pk) == "done"  # duplicate

    assert sim_bridge.sim("sim_positions", 9401) == ()
    request.refresh_from_db()
    assert request.realized_pnl < Decimal(-2000) and request.close_price > Decimal("1.08")
    episode.refresh_from_db()
    assert episode.status == "done"
    assert GuardAlert.objects.filter(account=account, kind="liquidation_done").count() == 1
    closes = [d for d in sim_bridge.admin_deals(9401) if d.position_id == ticket
              and d.entry == mt5_api.DEAL_ENTRY_OUT]
    assert len(closes) == 1  # sent once


def test_a_recovered_account_is_not_closed(gapped, sim_bridge):
    account, _ = gapped
    episode = LiquidationEpisode.objects.get(account=account)
    # the owner raises this account's limit during the countdown
    GuardOverride.objects.create(account=account, max_drawdown_percent=Decimal(50))

    assert pipeline.liquidation_recheck(episode_id=episode.pk) == "cancelled"

    assert len(sim_bridge.sim("sim_positions", 9401)) == 1
    assert not CloseRequest.objects.exists()
    assert GuardAlert.objects.filter(account=account, kind="liquidation_cancelled").exists()


def test_a_failed_read_never_liquidates(gapped, sim_bridge):
    account, _ = gapped
    episode = LiquidationEpisode.objects.get(account=account)
    sim_bridge.sim("sim_inject_fault", "none", method="account_info", count=10)

    results = [pipeline.liquidation_recheck(episode_id=episode.pk) for _ in range(3)]

    assert results == ["retry", "retry", "aborted"]
    assert len(sim_bridge.sim("sim_positions", 9401)) == 1
    assert not CloseRequest.objects.exists()
    episode.refresh_from_db()
    assert episode.status == "aborted"


def test_a_read_only_account_is_alerted_never_closed(sim_bridge, linked_account):
    from accounts.models import TradingAccount as Model

    account = linked_account(9402)
    Model.objects.filter(pk=account.pk).update(credentials_read_only=True)
    sim_bridge.sim("sim_advance", FRIDAY_2000)
    sim_bridge.sim("sim_open", 9402, "EURUSD", "sell", "1.20", magic=1)
    sync(account)
    sim_bridge.sim("sim_advance", 1)
    sync(account)
    assert not LiquidationEpisode.objects.filter(account=account).exists()
    assert GuardAlert.objects.filter(account=account, kind="read_only").exists()


# --- the close path, retcode by retcode ---
@pytest.fixture
def open_position(sim_bridge, linked_account):
    account = linked_account(9410)
    ticket = int(sim_bridge.sim("sim_open", 9410, "EURUSD", "buy", "0.10", magic=1))
    sync(account)
    request = services.close_request_open(account=account, ticket=ticket, symbol="EURUSD",
                                          key="test:1", reason="drawdown")
    return account, ticket, request


def test_requote_is_retried_with_a_fresh_price(open_position, sim_bridge):
    _, _, request = open_position
    sim_bridge.sim("sim_inject_fault", "requote", method="order_send")
    assert services.close_request_execute(close_request_id=request.pk) == "pending"
    assert services.close_request_execute(close_request_id=request.pk) == "done"
    outcomes = list(CloseAttempt.objects.filter(close_request=request).order_by("number")
                    .values_list("outcome", "retcode"))
    assert outcomes == [("retry", mt5_api.TRADE_RETCODE_REQUOTE),
                        ("done", mt5_api.TRADE_RETCODE_DONE)]


def test_a_lost_reply_is_looked_up_not_resent(open_position, sim_bridge):
    _, ticket, request = open_position
    # the order executes at the terminal but its reply never arrives
    sim_bridge.sim("sim_inject_fault", "lost_reply", method="order_send")
    assert services.close_request_execute(close_request_id=request.pk) == "sending"
    CloseRequest.objects.filter(pk=request.pk).update(sending_until=None)
    assert services.close_request_execute(close_request_id=request.pk) == "done"
    assert CloseAttempt.objects.filter(close_request=request).last().comment == \
        "found closed on look-up"
    closes = [d for d in sim_bridge.admin_deals(9410) if d.position_id == ticket
              and d.entry == mt5_api.DEAL_ENTRY_OUT]
    assert len(closes) == 1


def test_a_worker_killed_after_sending_closes_once(open_position, sim_bridge):
    """The first worker sent the close and died before committing: the row says
    "sending" with an expired lease. The next worker looks up and finds it closed."""
    account, ticket, request = open_position
    from accounts.gateways import account_gateway

    assert account_gateway(account).close_position(ticket, None, "bo-close-x").done
    CloseRequest.objects.filter(pk=request.pk).update(status="sending", sending_until=None,
                                                      attempts=1)
    assert services.close_request_execute(close_request_id=request.pk) == "done"
    closes = [d for d in sim_bridge.admin_deals(9410) if d.position_id == ticket
              and d.entry == mt5_api.DEAL_ENTRY_OUT]
    assert len(closes) == 1


def test_a_worker_sending_now_is_left_alone(open_position):
    from datetime import timedelta

    from django.utils import timezone

    _, _, request = open_position
    CloseRequest.objects.filter(pk=request.pk).update(
        status="sending", sending_until=timezone.now() + timedelta(seconds=20))
    assert services.close_request_execute(close_request_id=request.pk) == "busy"
    assert not CloseAttempt.objects.exists()


def test_an_already_closed_position_is_done(open_position, sim_bridge):
    _, ticket, request = open_position
    sim_bridge.sim("sim_close", 9410, ticket)
    assert services.close_request_execute(close_request_id=request.pk) == "done"
    assert CloseAttempt.objects.get(close_request=request).retcode == \
        mt5_api.TRADE_RETCODE_POSITION_CLOSED


def test_a_rejected_close_fails_and_is_alerted(open_position, sim_bridge):
    account, _, request = open_position
    sim_bridge.sim("sim_inject_fault", "reject", method="order_send")
    assert services.close_request_execute(close_request_id=request.pk) == "failed"
    assert GuardAlert.objects.filter(account=account, kind="close_failed").exists()
    assert len(sim_bridge.sim("sim_positions", 9410)) == 1


# --- market guard ---
def test_the_market_guard_flags_the_real_weekend_gap_once(sim_bridge, linked_account):
    from guards.models import GuardSettings

    account = linked_account(9420)
    row = services.guard_settings_get()
    GuardSettings.objects.filter(pk=row.pk).update(price_gap_alert_percent=Decimal(1))
    sim_bridge.sim("sim_advance", FRIDAY_2000)
    sim_bridge.sim("sim_open", 9420, "EURUSD", "buy", "0.10", magic=1)
    sync(account)
    assert services.market_guard_scan() == 0  # Friday 20:00: an ordinary hour

    sim_bridge.sim("sim_advance", 1)  # Sunday 21:00 opens 1.08930 after a 1.07268 close
    sync(account)
    assert services.market_guard_scan() == 1
    assert services.market_guard_scan() == 0  # the same bar: not raised twice
    alert = GuardAlert.objects.get(account=account, kind="market")
    # (1.08930 − 1.07268) / 1.07268 × 100 = 1.5494 %
    assert alert.payload["kind"] == "gap" and alert.payload["value"].startswith("1.549")

    sim_bridge.sim("sim_advance", 1)  # Sunday 22:00: no gap
    sync(account)
    assert services.market_guard_scan() == 0
    assert not CloseRequest.objects.exists()  # the default action only alerts


def test_a_liquidated_flat_account_opens_no_new_episode(gapped, sim_bridge):
    account, _ = gapped
    episode = LiquidationEpisode.objects.get(account=account)
    pipeline.liquidation_recheck(episode_id=episode.pk)
    for request in CloseRequest.objects.filter(account=account):
        services.close_request_execute(close_request_id=request.pk)
    for _ in range(3):
        account = sync(account)  # flat; the baseline restarted at the flat equity
    assert account.drawdown_percent == Decimal(0)
    assert account.peak_equity == account.equity
    assert LiquidationEpisode.objects.filter(account=account).count() == 1
    from guards.models import AccountGuardState

    assert AccountGuardState.objects.get(account=account).trading_blocked
