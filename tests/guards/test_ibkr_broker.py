"""An Interactive Brokers account through the production path: ibkr adapter → ib_async →
the IB Gateway stand-in (a real process speaking the TWS API wire protocol), registered as
a Terminal of kind ib_gateway. It syncs, reconciles, is guarded, closes with IB's realized
P&L in the summary, and is liquidated end to end at the real 2017-04-23 weekend gap.

Prices (brokers/sim/README.md): GOOG's bid and ask are a cent either side of the GOOG_D1
close, its mark the close; EUR.USD's bid is the EURUSD_H1 close, the ask 0.00005 above, the
mark their mean. Commissions: stocks 0.005 USD a share, 1.00 minimum; IDEALPRO 0.2 bp of the
value, 2.00 minimum. avgCost carries the commission; realizedPNL is net of both legs'."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import TradingAccount
from accounts.services import ibkr_account_link
from guards import services
from guards.models import AccountGuardState, CloseRequest, DrawdownAlert, LiquidationEpisode
from pipeline import services as pipeline
from pipeline.services import accounts_sync
from positions.models import EquitySnapshot, Position
from reconciliation.models import OpenDivergence
from tests.support.ibkr import USD_ACCOUNT, ib_stand_in

__all__ = ["ib_stand_in"]  # the fixture, imported for pytest

pytestmark = pytest.mark.django_db

GOOG_CON_ID = 208813720
EURUSD_CON_ID = 12087792
FRIDAY_2000 = ("--start-bar", "59")  # 2017-04-21 20:00; the next bar is Sunday's, +1.55 %


def sync(account: TradingAccount) -> TradingAccount:
    outcome = accounts_sync(account_ids=[account.pk])
    assert account.pk in outcome.synced, (
        TradingAccount.objects.get(pk=account.pk).sync_error_message)
    account.refresh_from_db()
    return account


def test_an_ibkr_account_syncs_reconciles_is_guarded_and_closes_with_ibs_pnl(
        ib_stand_in, member, api):
    account = ibkr_account_link(user=member, account_id=USD_ACCOUNT, gateway="ib-1")
    # bought in TWS (clientId 0): 100 GOOG at the ask of 2004-08-19, 100.34 + 0.01
    ib_stand_in.admin("trade", account=USD_ACCOUNT, symbol="GOOG", side="buy", quantity=100)

    account = sync(account)

    # cash 100,000 − 100 × 100.35 − 1.00 commission = 89,964.00; the shares at the mark
    # 100 × 100.34 = 10,034.00; NetLiquidation 99,998.00; avgCost (10,035 + 1) / 100 =
    # 100.36, unrealized 10,034 − 10,036 = −2.00; margin 25 % of 10,034 = 2,508.50
    assert (account.sync_status, account.currency) == ("healthy", "USD")
    assert (account.balance, account.equity, account.profit) == (
        Decimal("89964.00"), Decimal("99998.00"), Decimal("-2.00"))
    assert (account.margin, account.free_margin) == (Decimal("2508.50"), Decimal("97489.50"))
    (position,) = Position.objects.filter(account=account)
    assert (position.ticket, position.symbol, position.side, position.volume) == (
        GOOG_CON_ID, "GOOG", "buy", Decimal("100"))
    assert (position.price_open, position.price_current, position.profit) == (
        Decimal("100.36"), Decimal("100.34"), Decimal("-2.00"))
    assert position.last_synced_at == account.last_synced_at
    # the equity identity is MetaTrader 5's: an IB read stores no residual
    assert EquitySnapshot.objects.get(account=account).identity_residual is None
    # reconciled: nobody registered this trade, and it is not the bot's (magic 0)
    assert OpenDivergence.objects.filter(account=account, kind="manual").exists()
    # guarded: the drawdown guard judged the read
    assert AccountGuardState.objects.get(account=account).level == "ok"

    # the next day (2004-08-20, close 108.31): a member's close through the close path
    ib_stand_in.admin("advance")
    request = services.close_request_open(account=account, ticket=GOOG_CON_ID, symbol="GOOG",
                                          key="test", reason=CloseRequest.Reason.MANUAL)
    assert services.close_request_execute(close_request_id=request.pk) == "done"
    assert ib_stand_in.holdings(USD_ACCOUNT) == []
    account = sync(account)

    # sold at the bid 108.30: 10,830 − 1.00 commission − the cost 10,036 = 793.00
    position.refresh_from_db()
    assert (position.status, position.realized_pnl) == ("closed", Decimal("793.00"))
    assert account.balance == account.equity == Decimal("100793.00")
    summary = api.get(f"/api/v1/accounts/{account.pk}/summary").json()
    assert (summary["realized_pnl"], summary["closed_trades"], summary["wins"]) == (
        "793.00", 1, 1)
    assert Decimal(summary["win_rate_percent"]) == Decimal(100)


@pytest.mark.parametrize("ib_stand_in", [FRIDAY_2000], indirect=True)
def test_an_ibkr_account_is_liquidated_at_the_gap_through_the_stand_in(ib_stand_in, member):
    account = ibkr_account_link(user=member, account_id=USD_ACCOUNT, gateway="ib-1")
    # short 1,500,000 EUR at the bid 1.07268 (commission 0.2 bp: 32.1804 USD)
    ib_stand_in.admin("trade", account=USD_ACCOUNT, symbol="EURUSD", side="sell",
                      quantity=1_500_000)
    account = sync(account)
    # cash 100,000 + 1,609,020 − 32.1804 = 1,708,987.8196; the short at the mark
    # 1.072705: −1,609,057.50; equity 99,930.3196 → 99,930.32, the first peak
    assert account.equity == Decimal("99930.32")

    ib_stand_in.admin("advance")  # Sunday 2017-04-23 21:00: bid 1.0898, mark 1.089825
    account = sync(account)

    # the short at −1,634,737.50: equity 74,250.3196 → 74,250.32; drawdown
    # (99,930.32 − 74,250.32) / 99,930.32 = 25.70 % of the peak, past the 20 % critical
    assert account.equity == Decimal("74250.32")
    assert account.drawdown_percent == Decimal("25.70")
    assert DrawdownAlert.objects.filter(account=account, level_to="critical").exists()
    episode = LiquidationEpisode.objects.get(account=account)

    # the re-check reads the account again through the stand-in: still critical → close
    assert pipeline.liquidation_recheck(episode_id=episode.pk) == "liquidating"
    (request,) = CloseRequest.objects.filter(episode=episode)
    assert request.ticket == EURUSD_CON_ID
    assert services.close_request_execute(close_request_id=request.pk) == "done"

    episode.refresh_from_db()
    assert episode.status == "done"
    assert ib_stand_in.holdings(USD_ACCOUNT) == []  # flat at the broker
    orders = [e for e in ib_stand_in.admin("state")["executions"]
              if e["account"] == USD_ACCOUNT and e["side"] == "BOT"]
    assert len(orders) == 1  # one closing order, never two
    account = sync(account)
    # bought back at the ask 1.08985: 1,634,775 + 32.6955 commission; IB's realizedPNL
    # = 1,609,020 − 32.1804 − 1,634,775 − 32.6955 = −25,819.8759 → −25,819.88
    position = Position.objects.get(account=account, ticket=EURUSD_CON_ID)
    assert (position.status, position.realized_pnl) == ("closed", Decimal("-25819.88"))


@pytest.mark.parametrize("ib_stand_in", [FRIDAY_2000], indirect=True)
def test_a_read_only_ibkr_account_is_alerted_never_closed(ib_stand_in, member):
    account = ibkr_account_link(user=member, account_id=USD_ACCOUNT, gateway="ib-1",
                                read_only=True)
    ib_stand_in.admin("trade", account=USD_ACCOUNT, symbol="EURUSD", side="sell",
                      quantity=1_500_000)
    account = sync(account)
    ib_stand_in.admin("advance")
    account = sync(account)

    assert account.drawdown_percent == Decimal("25.70")  # as above: critical
    assert DrawdownAlert.objects.filter(account=account, level_to="critical").exists()
    assert not LiquidationEpisode.objects.filter(account=account).exists()
    assert not CloseRequest.objects.filter(account=account).exists()
    assert ib_stand_in.holdings(USD_ACCOUNT) == ["EURUSD"]
