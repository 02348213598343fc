"""The demo's trading bot: registers expected trades, then executes them on the simulated
terminal through the real gateway, with the imperfections real execution has.

Demo only (``DEMO_BOT=true``, set by ``scripts/demo``); it uses the simulated terminal's
``sim_*`` calls to inject a partial fill, slippage, a hand close and a manual position.
Each scripted imperfection runs once per account (keyed by ``signal_ref``), on the accounts
in login order:

0. trades normally, and later closes its own position (no divergence)
1. a partial fill (half the volume)                       → partial_fill
2. a fill 40 points worse than requested                   → slippage
3. a registered trade whose order never reaches the broker → missing (after the grace)
4. a position a person closes by hand                      → closed_externally (client)
5. a SELL with its stop at 1.08000, held into the 2017-04-21 → 04-23 weekend: the Sunday
   open (1.08930) jumps the stop                           → closed_externally (sl) + gap
6. a position a person opens by hand (magic 0)             → manual
7. a stop loss 30 points away from the registered one      → sl_tp_mismatch
8. a bot order nobody registered                           → unexpected
9. a SELL far too big for the account, held into the weekend gap: the +1.55 % Sunday open
   costs about a third of the balance (a quarter in a GBP account) → the drawdown guard
   warns, re-checks after the delay with a fresh read, and liquidates the account through
   the close path

Every other account trades normally: at most two open bot positions, closed by the bot.

Interactive Brokers accounts (behind the IB Gateway stand-in, which holds no bot orders:
their positions were made "in TWS") are not traded; on the first one holding two positions
the bot closes its GOOG position once it has been open ``BOT_CLOSE_AFTER``, so realized
P&L and win rate show IB's figures (``_ibkr_close_once``).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.utils import timezone

from accounts.gateways import account_gateway, terminal_endpoint
from accounts.models import TradingAccount
from brokers import mt5_api
from brokers.bridge.client import BridgeTerminal
from brokers.errors import BrokerError
from brokers.gateway import Side
from brokers.sim.roster import DEMO_WITHDRAWAL_COMMENT
from config.errors import ApplicationError
from positions.models import Position
from reconciliation.models import ExpectedTrade
from reconciliation.services import expected_trade_register

logger = logging.getLogger(__name__)

SYMBOL = "EURUSD"
POINT = Decimal("0.00001")
SCENARIOS = ("normal", "partial_fill", "slippage", "missing", "hand_close", "weekend_gap",
             "manual", "sl_mismatch", "unexpected", "overleveraged", "withdrawal")

HAND_CLOSE_AFTER = timedelta(seconds=20)
BOT_CLOSE_AFTER = timedelta(seconds=40)


def _sim(account: TradingAccount) -> BridgeTerminal:
    """The simulated terminal that holds ``account`` (its fleet terminal, or the default)."""
    url, token = terminal_endpoint(account.terminal)
    return BridgeTerminal(url, token, timeout=settings.MT5_CONNECTION_TIMEOUT)


def _volume(account: TradingAccount) -> Decimal:
    """About 1 % of the balance at risk over 300 points: balance / 30000 lots, on the step."""
    balance = account.balance or Decimal(1000)
    lots = (balance / Decimal(30000)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return min(max(lots, Decimal("0.01")), Decimal("5.00"))


def _place(account: TradingAccount, trade: ExpectedTrade, *, sl: Decimal | None = None,
           volume: Decimal | None = None) -> int | None:
    """Send a registered trade through the gateway; returns the position ticket."""
    gateway = account_gateway(account)
    result = gateway.open_position(
        trade.symbol, Side(trade.side), volume or trade.volume,
        sl=trade.sl if sl is None else sl, tp=trade.tp, tag=trade.tag)
    if not result.done:
        logger.warning("demo bot: %s order refused (%s %s)", trade.tag, result.retcode,
                       result.comment)
        ExpectedTrade.objects.filter(pk=trade.pk, status=ExpectedTrade.Status.PENDING).update(
            status=ExpectedTrade.Status.FAILED)
        return None
    return result.ticket


def _register(account: TradingAccount, side: str, *, ref: str, sl_points: int | None = 1000,
              tp_points: int | None = 2000, sl: Decimal | None = None,
              volume: Decimal | None = None) -> ExpectedTrade:
    bid, ask = (Decimal(str(x)) for x in _sim(account).sim("sim_quote", SYMBOL))
    price = ask if side == "buy" else bid
    sign = 1 if side == "buy" else -1
    if sl is None and sl_points:
        sl = price - sign * sl_points * POINT
    tp = price + sign * tp_points * POINT if tp_points else None
    return expected_trade_register(account=account, symbol=SYMBOL, side=side,
                                   volume=volume or _volume(account), requested_price=price,
                                   sl=sl,
                                   tp=tp, signal_ref=ref)


def _scenario(account: TradingAccount, name: str) -> None:
    """Run account's demo scenario ``name`` once (``hand_close`` also closes its trade by
    hand a while later): each leaves a mark the reconciliation or the guard should show."""
    ref = f"demo:{name}:{account.login}"
    if name != "normal" and not ExpectedTrade.objects.filter(signal_ref=ref).exists():
        logger.info("demo bot: scenario %s on account %s", name, account.login)
    done = ExpectedTrade.objects.filter(account=account, signal_ref=ref).first()
    if name == "hand_close" and done is not None:
        _hand_close(account, done)
        return
    if done is not None or name == "normal":
        return
    if name in ("manual", "unexpected", "withdrawal"):
        _off_bot_scenario(account, name, ref)
    elif name in ("overleveraged", "weekend_gap"):
        _guard_scenario(account, name, ref)
    else:
        _imperfect_order(account, name, ref)


def _hand_close(account: TradingAccount, done: ExpectedTrade) -> None:
    """A person closes the bot's trade by hand once it has been open a while."""
    if not (done.ticket and done.status == "open" and done.opened_at
            and timezone.now() - done.updated_at > HAND_CLOSE_AFTER):
        return
    login = int(account.login)
    sim = _sim(account)
    # the trade stays "open" here until the next sync notices: close only once
    if any(p.ticket == done.ticket for p in sim.sim("sim_positions", login)):
        sim.sim("sim_close", login, done.ticket, reason=mt5_api.DEAL_REASON_CLIENT)


def _off_bot_scenario(account: TradingAccount, name: str, ref: str) -> None:
    """What happens beside the bot: a manual trade, an unexpected bot-magic trade, or a
    withdrawal. A cancelled marker trade, never matched, remembers that it ran."""
    login = int(account.login)
    sim = _sim(account)
    if name == "manual":
        sim.sim("sim_open", login, SYMBOL, "buy", str(_volume(account)), magic=0,
                comment="by hand")
    elif name == "unexpected":
        sim.sim("sim_open", login, SYMBOL, "sell", str(_volume(account)),
                magic=settings.BOT_MAGIC, comment="retry-7")
    else:
        # The member takes 30 % of the balance out: money out is not drawdown, so the guard
        # stays at "ok" (guard_check in the smoke test waits for it and checks).
        amount = ((account.balance or Decimal(0)) * Decimal("0.30")).quantize(Decimal("0.01"))
        sim.sim("sim_balance_operation", login, str(-amount), DEMO_WITHDRAWAL_COMMENT)
    marker = _register(account, "buy", ref=ref)
    ExpectedTrade.objects.filter(pk=marker.pk).update(status=ExpectedTrade.Status.CANCELLED)


def _guard_scenario(account: TradingAccount, name: str, ref: str) -> None:
    """Trades the guard should act on at the real weekend gap."""
    if name == "overleveraged":
        # the gap moves EURUSD about 1,900 points: 1,900 × 1 (USD per point per lot) per lot
        balance = account.balance or Decimal(1000)
        volume = (balance * Decimal("0.32") / Decimal(1900)).quantize(
            Decimal("0.01"), rounding=ROUND_DOWN)
        trade = _register(account, "sell", ref=ref, sl_points=None, tp_points=None,
                          volume=max(volume, Decimal("0.01")))
    else:
        trade = _register(account, "sell", ref=ref, sl=Decimal("1.08000"), tp_points=None)
    _place(account, trade)


def _imperfect_order(account: TradingAccount, name: str, ref: str) -> None:
    """A bot order that goes wrong at the broker: lost, partly filled, slipped, or placed
    with another stop than expected (or a plain one, later closed by hand)."""
    login = int(account.login)
    sim = _sim(account)
    # a partial fill of the smallest volume would round to nothing: trade at least 0.10 lot
    volume = max(_volume(account), Decimal("0.10")) if name == "partial_fill" else None
    # wide stop, no target: the imperfection stays visible until the bot or a person acts
    trade = _register(account, "buy" if login % 2 else "sell", ref=ref, volume=volume,
                      sl_points=None if name == "hand_close" else 2500, tp_points=None)
    if name == "missing":
        return  # the order is "lost": never sent
    if name == "partial_fill":
        sim.sim("sim_inject_fault", "partial_fill", method="order_send", login=login,
                fraction=0.5)
    elif name == "slippage":
        sim.sim("sim_inject_fault", "slippage", method="order_send", login=login, points=40)
    if name == "sl_mismatch" and trade.sl is not None:
        sign = 1 if trade.side == "sell" else -1  # further from the price
        _place(account, trade, sl=trade.sl + sign * 30 * POINT)
        return
    _place(account, trade)


def _trade_normally(account: TradingAccount, rng: random.Random) -> None:
    live = list(ExpectedTrade.objects.filter(
        account=account, status=ExpectedTrade.Status.OPEN, signal_ref__startswith="demo:bot:"))
    now = timezone.now()
    for trade in live:
        if trade.ticket and now - trade.updated_at > BOT_CLOSE_AFTER and rng.random() < 0.3:
            account_gateway(account).close_position(trade.ticket, None, f"{trade.tag} x")
    pending = ExpectedTrade.objects.filter(
        account=account, status=ExpectedTrade.Status.PENDING,
        signal_ref__startswith="demo:bot:").exists()
    if len(live) < 2 and not pending:
        n = ExpectedTrade.objects.filter(account=account,
                                         signal_ref__startswith="demo:bot:").count()
        trade = _register(account, rng.choice(("buy", "sell")), ref=f"demo:bot:{n}")
        _place(account, trade)


def _ibkr_close_once() -> None:
    """Close the GOOG position of the first healthy IBKR account holding two positions,
    once it has been open ``BOT_CLOSE_AFTER``, through the gateway (a market order with an
    orderRef tag). Once: nothing more after any of its positions closed."""
    accounts = TradingAccount.objects.filter(
        broker=TradingAccount.Broker.IBKR, is_active=True, credentials_read_only=False,
        sync_status=TradingAccount.SyncStatus.HEALTHY).order_by("login")
    for account in accounts:
        held = list(Position.objects.filter(account=account, status=Position.Status.OPEN))
        if Position.objects.filter(account=account, status=Position.Status.CLOSED).exists():
            return
        if len(held) < 2:
            continue
        goog = next((p for p in held if p.symbol == "GOOG"), None)
        if goog is None or timezone.now() - goog.opened_at < BOT_CLOSE_AFTER:
            return
        result = account_gateway(account).close_position(goog.ticket, None,
                                                         f"demo-close-{account.login}")
        logger.info("demo bot: IBKR %s GOOG close: %s %s", account.login, result.retcode,
                    result.comment)
        return


def demo_bot_step(*, step: int) -> None:
    """One round over the demo accounts. Safe to repeat: scenarios run once each."""
    try:
        _ibkr_close_once()
    except BrokerError as exc:  # refused or unreachable: try again next step
        logger.warning("demo bot: IBKR close: %s", exc)
    # Scenarios belong to accounts by login order over every demo MT5 account, so an
    # account that is not synced yet waits for its own scenario instead of shifting the
    # others.
    accounts = list(TradingAccount.objects.filter(
        broker=TradingAccount.Broker.MT5, is_active=True,
        credentials_read_only=False).order_by("login"))
    for index, account in enumerate(accounts):
        if account.sync_status != TradingAccount.SyncStatus.HEALTHY:
            continue
        rng = random.Random(f"{account.login}:{step}")  # noqa: S311 - demo trading, not crypto
        try:
            if index < len(SCENARIOS):
                _scenario(account, SCENARIOS[index])
            _trade_normally(account, rng)
        except (BrokerError, ApplicationError) as exc:  # refused: try again next step
            logger.warning("demo bot: account %s: %s", account.login, exc)
