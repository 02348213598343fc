"""P&L, margin, margin level and drawdown: pure Decimal arithmetic, no database.

Sources (MetaTrader 5 Help, "Margin and profit calculation" / "Calculation of profit"):

- Forex profit, in the symbol's profit (quote) currency:
  ``(close − open) × contract_size × lots`` for a buy, ``(open − close) × …`` for a sell.
- Profit by tick value, in the account currency (what ``order_calc_profit`` does):
  ``(close − open) / tick_size × tick_value × lots``, ``tick_value`` being the value of one
  ``tick_size`` move of one lot in the account currency.
- Forex margin, in the symbol's margin (base) currency:
  ``lots × contract_size / leverage × margin_rate``.
- CFD margin, in the margin currency: ``lots × contract_size × market_price × margin_rate``.
- Margin level, percent: ``equity / margin × 100`` (none when no margin is used).
- Drawdown, percent of the high-water mark: ``(peak − equity) / peak × 100``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from brokers.gateway import Deal, DealKind, Side

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def money(amount: Decimal, places: int = 2) -> Decimal:
    """Round to the account currency's digits (half up, as MetaTrader 5 displays)."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def forex_profit(*, side: Side, volume: Decimal, price_open: Decimal,
                 price_close: Decimal, contract_size: Decimal) -> Decimal:
    """Profit in the symbol's quote currency, unrounded. ``volume`` in lots.

    A buy closes at the bid, a sell at the ask: pass the price the position would close at.
    """
    return (price_close - price_open) * contract_size * volume * Side(side).sign


def profit_by_tick_value(*, side: Side, volume: Decimal, price_open: Decimal,
                         price_close: Decimal, tick_size: Decimal,
                         tick_value: Decimal) -> Decimal:
    """Profit in the account currency, unrounded (MetaTrader 5: order_calc_profit)."""
    if tick_size <= 0:
        raise ValueError("tick_size must be positive")
    ticks = (price_close - price_open) / tick_size
    return ticks * tick_value * volume * Side(side).sign


def forex_margin(*, volume: Decimal, contract_size: Decimal, leverage: int,
                 margin_rate: Decimal = Decimal(1)) -> Decimal:
    """Margin in the symbol's margin (base) currency, unrounded."""
    if leverage <= 0:
        raise ValueError("leverage must be positive")
    return volume * contract_size / Decimal(leverage) * margin_rate


def cfd_margin(*, volume: Decimal, contract_size: Decimal, price: Decimal,
               margin_rate: Decimal) -> Decimal:
    """Margin in the symbol's margin currency, unrounded (CFD calculation mode)."""
    return volume * contract_size * price * margin_rate


def margin_level(*, equity: Decimal, margin: Decimal) -> Decimal | None:
    """Equity / margin × 100, in percent, rounded to 0.01; ``None`` when margin is zero."""
    if margin <= 0:
        return None
    return (equity / margin * HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)


def high_water_mark(*, previous_peak: Decimal | None, equity: Decimal) -> Decimal:
    """The peak equity so far, including ``equity``."""
    return equity if previous_peak is None or equity > previous_peak else previous_peak


def drawdown_percent(*, peak_equity: Decimal, equity: Decimal) -> Decimal:
    """(peak − equity) / peak × 100, in percent of the peak, rounded to 0.01; never negative.

    A peak of zero or less (an empty or negative account) has no meaningful drawdown: 0.
    """
    if peak_equity <= 0 or equity >= peak_equity:
        return Decimal("0.00")
    return ((peak_equity - equity) / peak_equity * HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)


def pnl_percent(*, pnl: Decimal, entry_notional: Decimal) -> Decimal | None:
    """P&L as percent of the entry notional (same currency for both), rounded to 0.01."""
    if entry_notional <= 0:
        return None
    return (pnl / entry_notional * HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)


# --- closed positions and cash flows, from the deal history -------------------------------

CLOSING_ENTRIES = frozenset({"out", "out_by", "inout"})


@dataclass(frozen=True, slots=True)
class Closing:
    """How a position closed: ``closed_at`` (aware UTC) and ``close_price`` (quote currency)
    of its last closing deal, that deal's reason ("client", "expert", "sl", "tp", "so",
    "other"), and ``realized_pnl``: the sum of net profit (profit + swap + commission + fee)
    of all its deals, in the account currency, rounded to 0.01 half up (``money``)."""

    closed_at: datetime
    close_price: Decimal
    close_reason: str
    realized_pnl: Decimal


def position_closing(deals: Iterable[Deal]) -> Closing | None:
    """The closing figures of ONE position from its deals (MetaTrader 5: the deals whose
    ``position_id`` is the position's identifier; an "in" deal, then "out" deals, several
    for a partial close). ``None`` while no closing deal is in the history yet.

    The one home of realized P&L: the sync (a position vanished) and the close path (a
    close request done) both call this. Balance operations never count.
    """
    trades = [d for d in deals if d.kind is DealKind.TRADE]
    closing = sorted((d for d in trades if d.entry in CLOSING_ENTRIES),
                     key=lambda d: (d.time, d.ticket))
    if not closing:
        return None
    last = closing[-1]
    return Closing(closed_at=last.time, close_price=last.price, close_reason=last.reason.value,
                   realized_pnl=money(sum((d.net_profit for d in trades), Decimal(0))))


def peak_after_cash_flow(*, previous_peak: Decimal | None, cash_flow: Decimal,
                         equity: Decimal) -> Decimal:
    """The high-water mark after a read that saw ``cash_flow`` of balance operations
    (deposits and credit positive, withdrawals and charges negative), in the account
    currency: ``max(previous_peak + cash_flow, equity)``, or ``equity`` without a previous
    peak. Money in or out moves the peak with it, so drawdown measures trading loss only:
    a 25 % withdrawal at the peak leaves the drawdown at 0."""
    moved = None if previous_peak is None else previous_peak + cash_flow
    return high_water_mark(previous_peak=moved, equity=equity)
