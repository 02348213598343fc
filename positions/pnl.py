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

from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

SideName = Literal["buy", "sell"]
CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def _direction(side: SideName) -> int:
    if side == "buy":
        return 1
    if side == "sell":
        return -1
    raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")


def money(amount: Decimal, places: int = 2) -> Decimal:
    """Round to the account currency's digits (half up, as MetaTrader 5 displays)."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def forex_profit(*, side: SideName, volume: Decimal, price_open: Decimal,
                 price_close: Decimal, contract_size: Decimal) -> Decimal:
    """Profit in the symbol's quote currency, unrounded. ``volume`` in lots.

    A buy closes at the bid, a sell at the ask: pass the price the position would close at.
    """
    return (price_close - price_open) * contract_size * volume * _direction(side)


def profit_by_tick_value(*, side: SideName, volume: Decimal, price_open: Decimal,
                         price_close: Decimal, tick_size: Decimal,
                         tick_value: Decimal) -> Decimal:
    """Profit in the account currency, unrounded (MetaTrader 5: order_calc_profit)."""
    if tick_size <= 0:
        raise ValueError("tick_size must be positive")
    ticks = (price_close - price_open) / tick_size
    return ticks * tick_value * volume * _direction(side)


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
