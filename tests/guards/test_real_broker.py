"""Guards and sync as they must hold on a real MetaTrader 5 broker (issue 10), each case run
through the production path (mt5 adapter → bridge client → bridge server → simulated
terminal, a real process) and in-process (the adapter driving the simulated terminal
directly): partial close fills, cash flows, baselines after a liquidation, the position
identifier, emergency closes that never give up, the sweeper, and one realized P&L."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import BaselineReset, TradingAccount
from brokers import mt5_api
from guards import services
from guards.models import (
    AccountGuardState,
    CloseAttempt,
    CloseRequest,
    DrawdownAlert,
    GuardAlert,
    LiquidationEpisode,
    PlatformState,
)
from pipeline import services as pipeline
from pipeline.services import accounts_sync
from positions.models import CashFlow, EquitySnapshot, Position
from tests.conftest import SIM_SERVER

pytestmark = pytest.mark.django_db

FRIDAY_2000 = 59  # bar of 2017-04-21 20:00; the next bar opens 1.55 % higher (the gap)


class InProcessBroker:
    """The simulated terminal in this process, with the bridge fixture's interface."""

    def __init__(self) -> None:
        from brokers.sim.prices import ReplayClock
        from brokers.sim.runtime import BridgedSimTerminal

        self.terminal = BridgedSimTerminal(clock=ReplayClock(3600.0, manual=True))
        assert self.terminal.initialize()  # as the bridge does once, before any login

    def sim(self, name: str, /, *args, **kwargs):
        return getattr(self.terminal, name)(*args, **kwargs)

    def add_account(self, login: int, *, currency: str = "USD", leverage: int = 100,
                    balance: str = "10000") -> None:
        self.terminal.sim_create_account(login, f"pw-{login}", f"view-{login}", SIM_SERVER,
                                         currency, leverage, balance)

    def admin_deals(self, login: int) -> tuple:
        """Every deal of a test account, as history_deals_get answers them."""
        from brokers.sim.book import deal_tuple

        with self.terminal._lock:
            return tuple(deal_tuple(d, self.terminal._shift)
                         for d in self.terminal._books[login].deals)


@pytest.fixture(params=["bridge", "in_process"])
def broker(request, settings, monkeypatch):
    """The production path (a bridge process) or the same adapter on an in-process sim."""
    if request.param == "bridge":
        return request.getfixturevalue("sim_bridge")
    inproc = InProcessBroker()
    from brokers.mt5 import Mt5Gateway

    def open_gateway(*, login, password, server, server_timezone="UTC", **_):
        return Mt5Gateway(inproc.terminal, login=int(login), password=password, server=server,
                          server_timezone=server_timezone, magic=settings.BOT_MAGIC)

    monkeypatch.setattr("accounts.gateways.open_gateway", open_gateway)
    return inproc


@pytest.fixture
def link(broker, member):
    from accounts.services import trading_account_create

    def make(login: int, *, balance: str = "10000", currency: str = "USD") -> TradingAccount:
        broker.add_account(login, balance=balance, currency=currency)
        return trading_account_create(user=member, broker="mt5", broker_name="Sim",
                                      server=SIM_SERVER, login=str(login),
                                      password=f"pw-{login}")

    return make


def sync(account: TradingAccount) -> TradingAccount:
    outcome = accounts_sync(account_ids=[account.pk])
    assert account.pk in outcome.synced, (
        TradingAccount.objects.get(pk=account.pk).sync_error_message)
    account.refresh_from_db()
    return account


def level(account: TradingAccount) -> str:
    return AccountGuardState.objects.get(account=account).level


# --- 2. partial close fills --------------------------------------------------------------
def test_a_partial_close_is_followed_until_the_position_is_flat(broker, link):
    account = link(9501)
    ticket = int(broker.sim("sim_open", 9501, "EURUSD", "buy", "1.00", magic=1))
    account = sync(account)
    # the broker fills half of each request twice (TRADE_RETCODE_DONE_PARTIAL)
    broker.sim("sim_inject_fault", "partial_fill", method="order_send", count=2, fraction=0.5)
    request = services.close_request_open(account=account, ticket=ticket, symbol="EURUSD",
                                          key="test", reason=CloseRequest.Reason.MANUAL)

    assert services.close_request_execute(close_request_id=request.pk) == "done"

    assert broker.sim("sim_positions", 9501) == ()
    assert list(CloseAttempt.objects.filter(close_request=request).order_by("pk")
                .values_list("outcome", "retcode")) == [
        ("partial", mt5_api.TRADE_RETCODE_DONE_PARTIAL),
        ("partial", mt5_api.TRADE_RETCODE_DONE_PARTIAL),
        ("done", mt5_api.TRADE_RETCODE_DONE)]
    # 1.00 → 0.50 filled, then 0.25 of the 0.50 left, then the last 0.25: no lot twice
    outs = [Decimal(str(d.volume)) for d in broker.admin_deals(9501)
            if d.position_id == ticket and d.entry == mt5_api.DEAL_ENTRY_OUT]
    assert outs == [Decimal("0.5"), Decimal("0.25"), Decimal("0.25")]
    request.refresh_from_db()
    assert request.closed_volume == Decimal("1.00")
    assert request.realized_pnl is not None


def test_an_episode_is_done_only_when_the_broker_lists_none_of_its_positions(broker, link):
    account = link(9502)
    broker.sim("sim_advance", FRIDAY_2000)
    broker.sim("sim_open", 9502, "EURUSD", "sell", "0.60", magic=1)
    broker.sim("sim_open", 9502, "EURUSD", "sell", "0.60", magic=1)
    account = sync(account)
    broker.sim("sim_advance", 1)
    account = sync(account)
    episode = LiquidationEpisode.objects.get(account=account)
    assert pipeline.liquidation_recheck(episode_id=episode.pk) == "liquidating"
    broker.sim("sim_inject_fault", "partial_fill", method="order_send", count=1, fraction=0.5)
    requests = list(CloseRequest.objects.filter(episode=episode).order_by("pk"))

    assert services.close_request_execute(close_request_id=requests[0].pk) == "done"
    episode.refresh_from_db()
    assert episode.status == "liquidating"  # one position is still listed
    assert services.close_request_execute(close_request_id=requests[1].pk) == "done"

    episode.refresh_from_db()
    assert episode.status == "done"
    assert broker.sim("sim_positions", 9502) == ()


def test_an_accounts_closes_go_out_in_one_call_sequence_and_a_lost_reply_stops_it(
        broker, link, monkeypatch):
    """Three positions liquidated by one ``close_requests_execute``: one gateway (one
    login, one terminal lease) for all three. The first order fills, but the look-up after
    it fails (the terminal's link drops): nothing more is sent in that sequence, all three
    are "sending", and the next attempt looks each up first: the first is found closed,
    the other two are sent. Each position closed exactly once (one OUT deal each)."""
    import accounts.gateways

    account = link(9512)
    broker.sim("sim_advance", FRIDAY_2000)
    tickets = [broker.sim("sim_open", 9512, "EURUSD", "sell", "0.40", magic=1)
               for _ in range(3)]
    account = sync(account)
    broker.sim("sim_advance", 1)
    account = sync(account)
    episode = LiquidationEpisode.objects.get(account=account)
    assert pipeline.liquidation_recheck(episode_id=episode.pk) == "liquidating"
    ids = list(CloseRequest.objects.filter(episode=episode).order_by("pk").values_list(
        "pk", flat=True))
    assert len(ids) == 3

    opened = []
    real = accounts.gateways.account_gateway

    def counting(account):
        opened.append(account.pk)
        return real(account)

    monkeypatch.setattr(accounts.gateways, "account_gateway", counting)
    # the close's own look-up of the position answers; the look-up after the fill fails
    broker.sim("sim_inject_fault", "delay", method="positions_get", count=1, delay=0.0)
    broker.sim("sim_inject_fault", "disconnect", method="positions_get", count=1)
    assert services.close_requests_execute(close_request_ids=ids) == dict.fromkeys(
        ids, "sending")
    assert opened == [account.pk]
    assert len(broker.sim("sim_positions", 9512)) == 2  # the first order did fill

    assert services.close_requests_execute(close_request_ids=ids) == dict.fromkeys(
        ids, "done")
    assert opened == [account.pk, account.pk]
    assert broker.sim("sim_positions", 9512) == ()
    outs = [d.position_id for d in broker.admin_deals(9512)
            if d.entry == mt5_api.DEAL_ENTRY_OUT]
    assert sorted(outs) == sorted(int(t) for t in tickets)
    first = CloseAttempt.objects.filter(close_request_id=ids[0]).order_by("pk")
    assert [a.outcome for a in first] == ["ambiguous", "done"]
    assert first.last().comment == "found closed on look-up"
    assert CloseAttempt.objects.filter(close_request_id=ids[1]).count() == 2
    assert CloseAttempt.objects.filter(close_request_id=ids[2]).order_by(
        "pk").first().comment == "not sent: an earlier close of this account failed"
    episode.refresh_from_db()
    assert episode.status == "done"
    assert all(r.realized_pnl is not None for r in CloseRequest.objects.filter(pk__in=ids))


# --- 3. cash flows are not drawdown ------------------------------------------------------
def test_a_withdrawal_of_25_percent_neither_warns_nor_liquidates(broker, link):
    account = link(9503)
    broker.sim("sim_open", 9503, "EURUSD", "buy", "0.10", magic=1)
    account = sync(account)
    peak_before = account.peak_equity

    broker.sim("sim_balance_operation", 9503, "-2500", "withdrawal")
    account = sync(account)

    # MetaTrader 5: equity = balance + credit + floating; the peak moved with the money out
    assert account.peak_equity == peak_before - Decimal(2500)
    assert account.drawdown_percent < Decimal(1)
    assert level(account) == "ok"
    assert not DrawdownAlert.objects.filter(account=account).exists()
    assert not LiquidationEpisode.objects.filter(account=account).exists()
    flow = CashFlow.objects.get(account=account, baseline=False)
    assert (flow.kind, flow.amount) == ("balance", Decimal("-2500.00"))
    assert EquitySnapshot.objects.filter(account=account).latest("taken_at").cash_flow == \
        Decimal("-2500.00")
    # the deal is read again by the next syncs (the window overlaps): counted once
    account = sync(account)
    assert CashFlow.objects.filter(account=account, baseline=False).count() == 1
    assert account.cash_flow_total == Decimal("-2500.00")


def test_a_deposit_raises_the_peak_so_a_later_loss_is_measured_against_it(broker, link):
    account = link(9504)
    account = sync(account)
    assert account.peak_equity == Decimal("10000.00")
    assert CashFlow.objects.get(account=account).baseline  # the initial deposit

    broker.sim("sim_balance_operation", 9504, "5000", "deposit")
    broker.sim("sim_balance_operation", 9504, "1000", "credit line", kind="credit")
    account = sync(account)

    # 10,000 + 5,000 + 1,000 credit: equity and the peak both 16,000, drawdown 0
    assert (account.equity, account.peak_equity) == (Decimal("16000.00"), Decimal("16000.00"))
    assert account.drawdown_percent == Decimal("0.00")
    assert sorted(CashFlow.objects.filter(account=account, baseline=False)
                  .values_list("kind", "amount")) == [("balance", Decimal("5000.00")),
                                                      ("credit", Decimal("1000.00"))]


def test_period_floors_move_with_cash_flows(broker, link):
    """A daily-loss rule of 5 % of the initial balance: a 30 % withdrawal is not a loss."""
    from guards.models import GuardSettings

    services.guard_settings_get()
    GuardSettings.objects.filter(pk=1).update(daily_loss_percent=Decimal(5),
                                              daily_loss_action="close")
    account = link(9505)
    account = sync(account)
    broker.sim("sim_balance_operation", 9505, "-3000", "withdrawal")
    account = sync(account)

    state = AccountGuardState.objects.get(account=account)
    assert state.initial_balance == Decimal("7000.00")
    assert state.day_start_balance == Decimal("7000.00")
    assert state.breached_rules == [] and not state.trading_blocked
    assert not LiquidationEpisode.objects.filter(account=account).exists()


# --- 4. a new baseline after a liquidation -----------------------------------------------
@pytest.fixture
def liquidated(broker, link):
    """A 1.20-lot SELL into the 2017-04-23 weekend gap, liquidated (about −2,281 USD on
    10,000: 22.8 % of the peak, past the 20 % critical level)."""
    account = link(9506)
    broker.sim("sim_advance", FRIDAY_2000)
    broker.sim("sim_open", 9506, "EURUSD", "sell", "1.20", magic=1)
    account = sync(account)
    broker.sim("sim_advance", 1)
    account = sync(account)
    assert account.drawdown_percent > Decimal(20)
    episode = LiquidationEpisode.objects.get(account=account)
    pipeline.liquidation_recheck(episode_id=episode.pk)
    for request in CloseRequest.objects.filter(episode=episode):
        assert services.close_request_execute(close_request_id=request.pk) == "done"
    return account


def test_after_a_liquidation_the_baseline_restarts_at_the_flat_equity(liquidated, broker):
    peak = liquidated.peak_equity  # the high-water mark before the gap
    account = sync(liquidated)

    assert account.peak_equity == account.equity < Decimal(8000)
    assert account.drawdown_percent == Decimal("0.00")
    reset = BaselineReset.objects.get(account=account)
    assert reset.previous_peak == peak and reset.changed_by is None
    assert account.baseline_started_at == reset.changed_at
    # a new position is judged against the new baseline: not critical at once
    broker.sim("sim_open", 9506, "EURUSD", "buy", "0.10", magic=1)
    account = sync(account)
    assert level(account) == "ok"
    assert LiquidationEpisode.objects.filter(account=account).count() == 1


def test_the_owner_resets_a_baseline_audited(broker, link, owner):
    from accounts.services import account_baseline_reset

    account = link(9507)
    broker.sim("sim_open", 9507, "EURUSD", "sell", "1.00", magic=1)
    account = sync(account)
    broker.sim("sim_advance", 5)
    account = sync(account)
    old_peak = account.peak_equity

    audit = account_baseline_reset(account=account, changed_by=owner, reason="new season")

    account.refresh_from_db()
    assert (audit.previous_peak, audit.new_peak) == (old_peak, account.equity)
    assert audit.changed_by == owner and audit.reason == "new season"
    assert account.peak_equity == account.equity
    assert account.drawdown_percent == Decimal(0)
    assert account.baseline_started_at == audit.changed_at


# --- 10. deals are joined on the position identifier -------------------------------------
def test_a_reticketed_position_keeps_its_row_and_closes_from_its_deals(broker, link):
    account = link(9508)
    ticket = int(broker.sim("sim_open", 9508, "EURUSD", "buy", "0.50", magic=1))
    account = sync(account)
    new_ticket = int(broker.sim("sim_reticket", 9508, ticket))
    account = sync(account)

    (position,) = Position.objects.filter(account=account)
    assert (position.ticket, position.identifier, position.status) == (new_ticket, ticket,
                                                                       "open")
    broker.sim("sim_advance", 3)
    broker.sim("sim_close", 9508, new_ticket)
    account = sync(account)

    position.refresh_from_db()
    assert position.status == "closed" and position.close_reason == "client"
    deals = [d for d in broker.admin_deals(9508) if d.position_id == ticket]
    expected = sum(Decimal(str(d.profit)) + Decimal(str(d.swap)) + Decimal(str(d.commission))
                   + Decimal(str(d.fee)) for d in deals)
    assert position.realized_pnl == expected.quantize(Decimal("0.01"))


# --- 8. an emergency close never gives up silently ---------------------------------------
def test_an_emergency_close_retries_while_the_broker_is_unreachable(broker, link, owner):
    account = link(9509)
    ticket = int(broker.sim("sim_open", 9509, "EURUSD", "buy", "0.30", magic=1))
    account = sync(account)
    request = services.close_request_open(account=account, ticket=ticket, symbol="EURUSD",
                                          key="episode:x", reason=CloseRequest.Reason.DRAWDOWN)
    broker.sim("sim_inject_fault", "disconnect", method="positions_get", count=8)

    statuses = [services.close_request_execute(close_request_id=request.pk)
                for _ in range(8)]
    # well past the old cap of 5 attempts, and never "failed"
    for status in statuses:
        assert status in ("pending", "sending")
        CloseRequest.objects.filter(pk=request.pk).update(sending_until=None)
    request.refresh_from_db()
    assert request.attempts == 8 and request.failing_since is not None
    assert request.next_attempt_at - timezone.now() <= timedelta(seconds=30)
    alerts = GuardAlert.objects.filter(account=account, kind="close_failed")
    assert alerts.count() == 1  # at the first failure, not at every attempt
    # five minutes later, still failing: one more alert
    CloseRequest.objects.filter(pk=request.pk).update(
        failure_alerted_at=timezone.now() - timedelta(minutes=5, seconds=1))
    broker.sim("sim_inject_fault", "disconnect", method="positions_get", count=1)
    services.close_request_execute(close_request_id=request.pk)
    assert alerts.count() == 2
    CloseRequest.objects.filter(pk=request.pk).update(sending_until=None)

    # the broker is back: the position is looked up, closed once
    assert services.close_request_execute(close_request_id=request.pk) == "done"
    assert broker.sim("sim_positions", 9509) == ()
    outs = [d for d in broker.admin_deals(9509)
            if d.position_id == ticket and d.entry == mt5_api.DEAL_ENTRY_OUT]
    assert len(outs) == 1


def test_the_owner_cancels_or_halts_a_failing_close(broker, link, owner):
    account = link(9510)
    first = int(broker.sim("sim_open", 9510, "EURUSD", "buy", "0.10", magic=1))
    second = int(broker.sim("sim_open", 9510, "EURUSD", "buy", "0.10", magic=1))
    account = sync(account)
    a = services.close_request_open(account=account, ticket=first, symbol="EURUSD", key="k",
                                    reason=CloseRequest.Reason.DRAWDOWN)
    b = services.close_request_open(account=account, ticket=second, symbol="EURUSD", key="k",
                                    reason=CloseRequest.Reason.DRAWDOWN)
    broker.sim("sim_inject_fault", "disconnect", method="positions_get", count=2)
    services.close_request_execute(close_request_id=a.pk)
    services.close_request_execute(close_request_id=b.pk)

    assert services.close_request_cancel(close_request=a, cancelled_by=owner)
    a.refresh_from_db()
    assert a.status == "cancelled"
    assert CloseAttempt.objects.filter(close_request=a, outcome="cancelled").exists()
    assert services.close_request_execute(close_request_id=a.pk) == "cancelled"

    services.platform_state_set(state=PlatformState.State.HALTED, changed_by=owner)
    CloseRequest.objects.filter(pk=b.pk).update(sending_until=None)
    assert services.close_request_execute(close_request_id=b.pk) == "cancelled"
    assert len(broker.sim("sim_positions", 9510)) == 2  # nothing sent after the stop
