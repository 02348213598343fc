"""Sync on a real database against the simulated terminal behind a real bridge process."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.models import TradingAccount
from brokers import mt5_api
from positions import pnl
from positions.models import EquitySnapshot, Position, SyncLog
from positions.services import accounts_sync

pytestmark = pytest.mark.django_db

BOT_MAGIC = 20240101


def sync(account: TradingAccount) -> TradingAccount:
    outcome = accounts_sync(account_ids=[account.pk])
    assert account.pk in outcome.synced + outcome.failed
    account.refresh_from_db()
    return account


def open_position(sim_bridge, login: int, side: str, volume: str, **kwargs) -> int:
    return int(sim_bridge.sim("sim_open", login, "EURUSD", side, volume,
                              magic=BOT_MAGIC, **kwargs))


def test_first_sync_stores_state_positions_snapshot_and_log(sim_bridge, linked_account):
    account = linked_account(7001)
    buy = open_position(sim_bridge, 7001, "buy", "1.00")
    sell = open_position(sim_bridge, 7001, "sell", "0.50")
    sim_bridge.sim("sim_advance", 2)

    account = sync(account)

    assert account.sync_status == TradingAccount.SyncStatus.HEALTHY, account.sync_error_message
    assert account.currency == "USD" and account.leverage == 100
    positions = {p.ticket: p for p in Position.objects.filter(account=account)}
    assert set(positions) == {buy, sell}
    assert positions[buy].side == "buy" and positions[buy].volume == Decimal("1.0000")
    # P&L is the broker's profit field; it must match MetaTrader 5's forex formula on the
    # stored prices: buy (bid − open) × 100000 × 1.00, sell (open − ask) × 100000 × 0.50.
    for position in positions.values():
        expected = pnl.money(pnl.forex_profit(
            side=position.side, volume=position.volume, price_open=position.price_open,
            price_close=position.price_current, contract_size=Decimal(100000)))
        assert position.profit == expected
    assert account.profit == sum(p.profit for p in positions.values())
    assert account.equity == account.balance + account.profit
    snapshot = EquitySnapshot.objects.get(account=account)
    assert snapshot.peak_equity == account.equity
    assert snapshot.drawdown_percent == Decimal("0.00")
    log = SyncLog.objects.get(account=account)
    assert (log.result, log.positions_opened, log.positions_updated) == ("ok", 2, 0)
    assert log.after["open_positions"] == 2


def test_prices_move_and_positions_update(sim_bridge, linked_account):
    account = linked_account(7002)
    ticket = open_position(sim_bridge, 7002, "buy", "0.10")
    account = sync(account)
    first = Position.objects.get(ticket=ticket).price_current

    sim_bridge.sim("sim_advance", 3)
    account = sync(account)

    position = Position.objects.get(ticket=ticket)
    assert position.price_current != first
    assert position.status == Position.Status.OPEN
    assert SyncLog.objects.filter(account=account, result="ok").count() == 2
    assert SyncLog.objects.latest("started_at").positions_updated == 1
    assert EquitySnapshot.objects.filter(account=account).count() == 2


def test_position_closed_by_hand_gets_realized_pnl_from_its_deal(sim_bridge, linked_account):
    account = linked_account(7003)
    ticket = open_position(sim_bridge, 7003, "buy", "0.20")
    account = sync(account)
    sim_bridge.sim("sim_advance", 2)
    sim_bridge.sim("sim_close", 7003, ticket, reason=mt5_api.DEAL_REASON_CLIENT)

    account = sync(account)

    position = Position.objects.get(ticket=ticket)
    assert position.status == Position.Status.CLOSED
    assert position.close_reason == Position.CloseReason.CLIENT
    # realized = (close − open) × 100000 × 0.20, in USD (MetaTrader 5 forex profit)
    expected = pnl.money((position.close_price - position.price_open) * 100000 * Decimal("0.2"))
    assert position.realized_pnl == expected
    assert account.balance == Decimal("10000.00") + expected
    log = SyncLog.objects.latest("started_at")
    assert (log.positions_closed, log.after["open_positions"]) == (1, 0)


def test_stop_loss_close_is_recorded_with_its_reason(sim_bridge, linked_account):
    account = linked_account(7004)
    bid = Decimal(str(sim_bridge.admin().sim("sim_quote", "EURUSD")[0]))
    # a buy with its stop 10 points under the bid: the next bars take it out
    ticket = open_position(sim_bridge, 7004, "buy", "0.10", sl=str(bid - Decimal("0.00010")))
    account = sync(account)
    sim_bridge.sim("sim_advance", 24)

    account = sync(account)

    position = Position.objects.get(ticket=ticket)
    assert position.status == Position.Status.CLOSED
    assert position.close_reason == Position.CloseReason.SL
    assert position.close_price <= position.sl  # at the stop, or worse across a gap
    assert position.realized_pnl < 0


def test_none_read_leaves_positions_and_marks_account_stale(sim_bridge, linked_account):
    account = linked_account(7005)
    ticket = open_position(sim_bridge, 7005, "sell", "0.30")
    account = sync(account)
    before = Position.objects.get(ticket=ticket)
    sim_bridge.sim("sim_advance", 2)
    sim_bridge.sim("sim_inject_fault", "none", method="positions_get")

    account = sync(account)

    after = Position.objects.get(ticket=ticket)
    assert after.status == Position.Status.OPEN  # unknown is never flat
    assert (after.price_current, after.profit) == (before.price_current, before.profit)
    assert account.sync_status == TradingAccount.SyncStatus.STALE
    assert account.sync_error_code == "broker_unavailable"
    assert account.consecutive_failures == 1
    log = SyncLog.objects.latest("started_at")
    assert log.result == "failed" and log.after == log.before


def test_bridge_timeout_leaves_everything_and_the_next_good_sync_heals(sim_bridge,
                                                                       linked_account):
    account = linked_account(7006)
    open_position(sim_bridge, 7006, "buy", "0.10")
    account = sync(account)
    equity = account.equity
    sim_bridge.sim("sim_advance", 2)
    # the terminal hangs for 6 s; the bridge gives up after MT5_CONNECTION_TIMEOUT (3 s)
    sim_bridge.sim("sim_inject_fault", "timeout", method="account_info", delay=6)

    account = sync(account)

    assert account.sync_status == TradingAccount.SyncStatus.STALE
    assert account.sync_error_code == "broker_timeout"
    assert account.equity == equity
    assert Position.objects.filter(account=account, status="open").count() == 1

    account = sync(account)
    assert account.sync_status == TradingAccount.SyncStatus.HEALTHY
    assert account.consecutive_failures == 0 and account.sync_error_code == ""


def test_bridge_with_a_wrong_token_is_refused_and_nothing_changes(sim_bridge, linked_account,
                                                                  settings):
    account = linked_account(7007)
    open_position(sim_bridge, 7007, "buy", "0.10")
    settings.MT5_BRIDGE_TOKEN = "not-the-bridge-token-at-all"

    account = sync(account)

    assert account.sync_status == TradingAccount.SyncStatus.ERROR
    assert account.sync_error_code == "bridge_refused"
    assert not Position.objects.filter(account=account).exists()
    assert account.equity is None


def test_wrong_password_is_an_error_that_needs_a_person(sim_bridge, linked_account):
    from accounts.crypto import credentials_encrypt

    account = linked_account(7008)
    TradingAccount.objects.filter(pk=account.pk).update(
        credentials_encrypted=credentials_encrypt(password="wrong"))

    account = sync(account)

    assert account.sync_status == TradingAccount.SyncStatus.ERROR
    assert account.sync_error_code == "broker_auth_failed"
    assert account.next_sync_at > datetime.now(tz=UTC)


def test_gbp_account_profit_is_in_gbp(sim_bridge, linked_account):
    account = linked_account(7009, currency="GBP", leverage=200)
    ticket = open_position(sim_bridge, 7009, "buy", "1.00")
    sim_bridge.sim("sim_advance", 2)

    account = sync(account)

    position = Position.objects.get(ticket=ticket)
    assert account.currency == "GBP"
    # The simulated terminal converts USD to GBP at its fixed GBPUSD 1.25000:
    # profit = (bid − open) × 100000 × 1 / 1.25 GBP
    usd = (position.price_current - position.price_open) * 100000
    assert position.profit == pnl.money(usd / Decimal("1.25"))


def test_the_history_is_read_whenever_a_cash_flow_is_possible(sim_bridge, linked_account):
    """The first read, a balance change and any trade read the deal history; a read with
    the same balance, credit, tickets and volumes cannot hold a net cash flow: no call."""
    from accounts.gateways import account_gateway

    calls: list[int] = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def deals(self, *args, **kwargs):
            calls.append(1)
            return self.inner.deals(*args, **kwargs)

    def read(account):
        calls.clear()
        accounts_sync(account_ids=[account.pk], gateway_for=lambda a: Counting(
            account_gateway(a)))
        account.refresh_from_db()
        return len(calls)

    account = linked_account(7101)
    ticket = open_position(sim_bridge, 7101, "buy", "0.40")
    assert read(account) == 1  # the first read: the whole history (the baseline)
    sim_bridge.sim("sim_advance", 1)
    assert read(account) == 0  # prices moved, nothing else
    sim_bridge.sim("sim_balance_operation", 7101, "250", "deposit")
    assert read(account) == 1  # the balance changed
    assert account.cash_flow_total == Decimal("250.00")
    sim_bridge.sim("sim_close", 7101, ticket, volume="0.10")
    assert read(account) == 1  # a partial close: its P&L could mask a deposit
    assert read(account) == 0
    sim_bridge.sim("sim_balance_operation", 7101, "75", "credit", kind="credit")
    assert read(account) == 1 and account.cash_flow_total == Decimal("325.00")
