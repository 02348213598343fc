"""Mark-to-market: estimate accounts' equity from their stored positions and live quotes.

Pure Decimal arithmetic, no database, no Django (issue 11 §2, the mark-to-market trigger).
It lives in ``risk`` because it needs both layers below: ``positions.pnl`` (profit,
drawdown) and ``guards.levels`` (the levels); ``positions`` may not import ``guards``
(tests/test_architecture.py).
The caller loads every input in a few set-based queries (accounts, their open positions,
the held symbols' specs) and the latest quotes; :func:`equity_estimates` then values every
position in one pass over the rows, grouped by account. **An estimate never closes
anything**: it only orders priority reads, and only a fresh read goes through the guard.

Formulas and sources:

- Profit of one position, in the symbol's profit currency (MetaTrader 5 Help, "Margin and
  profit calculation", calculation modes "Forex" and "CFD"; the Python API's
  ``order_calc_profit``): ``(close − open) × contract size × volume`` for a buy,
  ``(open − close) × contract size × volume`` for a sell
  (:func:`positions.pnl.forex_profit`). A buy closes at the **bid**, a sell at the **ask**.
- Into the deposit currency through the quote of the pair that joins the two currencies,
  as the terminal converts (its ``SYMBOL_TRADE_TICK_VALUE_PROFIT`` / ``_LOSS``, see
  ``risk.sizing``), at the rate less favourable to the account: a gain is made smaller and
  a loss larger. Pair DEPOSIT+PROFIT (GBPUSD for USD profit in a GBP account, USDJPY for
  JPY profit in a USD account): divide, a gain by the ask, a loss by the bid. Pair
  PROFIT+DEPOSIT (EURUSD for EUR profit in a USD account): multiply, a gain by the bid, a
  loss by the ask. With no such pair, through USD (two steps). With no pair at all, by the
  symbol's tick value when it is in the deposit currency:
  ``(close − open) / tick size × tick value × volume`` (``positions.pnl.
  profit_by_tick_value``; the tick value's conversion rate is the one of its last read).
- Each position's profit is rounded to the cent (half up, as MetaTrader 5 shows it); then
  equity = balance + credit + Σ(profit + swap), in the deposit currency (the same identity a
  read is checked with, ``positions.plausibility``).
- Drawdown, percent of the high-water mark: ``(peak − equity) / peak × 100``, 2 dp, and its
  level by :func:`guards.levels.drawdown_level` (critical, warning, ok), plus
  **near critical**: not critical, but the drawdown within ``near_critical_points``
  percentage points of the critical level.

An account holding a symbol without a quote, a spec, or a way into its deposit currency
cannot be estimated: its estimate is ``unknown`` and names what is missing.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from brokers.gateway import Quote, Side
from guards.levels import DrawdownThresholds, Level, drawdown_level
from positions.pnl import HUNDRED, forex_profit, money, profit_by_tick_value

ZERO = Decimal(0)
VIA = "USD"  # the currency a conversion without a direct pair goes through


class Estimate(enum.StrEnum):
    """An estimated account's standing, least to most urgent (``unknown``: no estimate)."""

    UNKNOWN = "unknown"
    OK = "ok"
    WARNING = "warning"
    NEAR_CRITICAL = "near_critical"
    CRITICAL = "critical"

    @property
    def needs_priority_read(self) -> bool:
        """True for warning, near critical and critical: read this account now, ahead of its
        cadence. An unknown estimate keeps the account's cadence (a read cannot supply the
        missing quote)."""
        return self in (Estimate.WARNING, Estimate.NEAR_CRITICAL, Estimate.CRITICAL)


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """What is stored of one account: money in its deposit ``currency`` (ISO code)."""

    account_id: int
    server: str
    currency: str
    balance: Decimal
    credit: Decimal
    peak_equity: Decimal | None  # the high-water mark; None: none yet


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """One stored open position: ``volume`` in lots, ``price_open`` in the symbol's price
    units, ``swap`` in the account's deposit currency."""

    account_id: int
    ticket: int
    symbol: str
    side: Side
    volume: Decimal
    price_open: Decimal
    swap: Decimal


@dataclass(frozen=True, slots=True)
class SymbolTerms:
    """A symbol's terms at one server (MetaTrader 5: SymbolInfo): ``contract_size`` in units
    of the base per lot (100,000 for EURUSD, 100 troy ounces for XAUUSD), the profit
    currency, and optionally the tick size (price units) and tick value (one tick of one lot,
    in ``tick_value_currency``), used only when no quote converts the profit currency."""

    contract_size: Decimal
    currency_profit: str
    tick_size: Decimal | None = None
    tick_value: Decimal | None = None
    tick_value_currency: str | None = None


@dataclass(frozen=True, slots=True)
class EquityEstimate:
    """One account's estimate. Money in the deposit currency, 2 dp; ``drawdown_percent`` of
    the high-water mark, 2 dp. ``equity``, ``floating`` (Σ profit + swap) and
    ``drawdown_percent`` are ``None`` when ``estimate`` is unknown; ``missing`` then names
    what was missing ("quote EURUSD", "spec XAUUSD", "conversion JPY->GBP")."""

    account_id: int
    estimate: Estimate
    equity: Decimal | None
    floating: Decimal | None
    drawdown_percent: Decimal | None
    positions: int
    missing: tuple[str, ...] = ()


def _converter(profit_ccy: str, deposit_ccy: str,
               quotes: Mapping[str, Quote]) -> tuple[tuple[str, bool], ...] | None:
    """The steps from ``profit_ccy`` to ``deposit_ccy``: (pair symbol, divide?) each, or
    None when no quote joins them (directly or through USD). () for the same currency."""
    if profit_ccy == deposit_ccy:
        return ()
    if deposit_ccy + profit_ccy in quotes:
        return ((deposit_ccy + profit_ccy, True),)
    if profit_ccy + deposit_ccy in quotes:
        return ((profit_ccy + deposit_ccy, False),)
    if VIA not in (profit_ccy, deposit_ccy):
        first = _converter(profit_ccy, VIA, quotes)
        second = _converter(VIA, deposit_ccy, quotes)
        if first is not None and second is not None:
            return first + second
    return None


def convert(amount: Decimal, steps: Iterable[tuple[str, bool]],
            quotes: Mapping[str, Quote]) -> Decimal:
    """``amount`` through ``steps`` (from ``_converter``), unrounded, at the rate less
    favourable to the account: dividing, a gain by the ask and a loss by the bid;
    multiplying, a gain by the bid and a loss by the ask (see the module docstring)."""
    for pair, divide in steps:
        quote = quotes[pair]
        gain = amount >= 0
        if divide:
            amount = amount / (quote.ask if gain else quote.bid)
        else:
            amount = amount * (quote.bid if gain else quote.ask)
    return amount


def position_profit(position: HeldPosition, *, quote: Quote, terms: SymbolTerms,
                    deposit_currency: str, quotes: Mapping[str, Quote]) -> Decimal | None:
    """One position's profit at ``quote``, in ``deposit_currency``, rounded to the cent; None
    when neither a conversion quote nor a tick value in the deposit currency is at hand.

    Closes a buy at the bid and a sell at the ask (MetaTrader 5: order_calc_profit, "Forex"
    and "CFD" calculation modes; see the module docstring for the conversion)."""
    side = Side(position.side)
    close = quote.bid if side == Side.BUY else quote.ask
    steps = _converter(terms.currency_profit, deposit_currency, quotes)
    if steps is not None:
        profit = forex_profit(side=side, volume=position.volume, price_open=position.price_open,
                              price_close=close, contract_size=terms.contract_size)
        return money(convert(profit, steps, quotes))
    if terms.tick_size and terms.tick_value and terms.tick_value_currency == deposit_currency:
        return money(profit_by_tick_value(
            side=side, volume=position.volume, price_open=position.price_open,
            price_close=close, tick_size=terms.tick_size, tick_value=terms.tick_value))
    return None


def classify(*, equity: Decimal, peak_equity: Decimal | None, thresholds: DrawdownThresholds,
             near_critical_points: Decimal) -> tuple[Estimate, Decimal]:
    """(standing, drawdown % of the high-water mark, 2 dp) of an estimated equity.

    The level is :func:`guards.levels.drawdown_level`'s (critical at ``max_percent`` or
    below ``min_equity``, warning at ``alert_percent``; no hysteresis: an estimate has no
    previous level); a drawdown at or above ``max_percent − near_critical_points`` that is
    not critical is near critical, whatever the warning level says. A missing peak counts
    as the equity itself (no drawdown yet)."""
    if near_critical_points < 0:
        raise ValueError(f"near_critical_points must be ≥ 0, got {near_critical_points}")
    reading = drawdown_level(peak_equity=equity if peak_equity is None else peak_equity,
                             equity=equity, thresholds=thresholds)
    if reading.level is Level.CRITICAL:
        return Estimate.CRITICAL, reading.drawdown_percent
    if reading.drawdown_percent >= thresholds.max_percent - near_critical_points:
        return Estimate.NEAR_CRITICAL, reading.drawdown_percent
    if reading.level is Level.WARNING:
        return Estimate.WARNING, reading.drawdown_percent
    return Estimate.OK, reading.drawdown_percent


def equity_estimates(*, accounts: Iterable[AccountFigures],
                     positions: Iterable[HeldPosition], quotes: Mapping[str, Quote],
                     terms: Mapping[tuple[str, str], SymbolTerms],
                     thresholds: DrawdownThresholds,
                     near_critical_points: Decimal) -> dict[int, EquityEstimate]:
    """Estimate every account's equity and standing in one pass over ``positions``.

    ``quotes`` by symbol (the held symbols and the conversion pairs, e.g. "GBPUSD");
    ``terms`` by (server, symbol); ``thresholds`` and ``near_critical_points`` (percentage
    points) as in :func:`classify`. Positions of accounts not in ``accounts`` are ignored.
    Returns {account id: EquityEstimate} for every account given (an account without
    positions is estimated at balance + credit). Raises ``ValueError`` for a side other
    than buy/sell or a negative ``near_critical_points``.
    """
    figures = {a.account_id: a for a in accounts}
    floating: dict[int, Decimal] = defaultdict(Decimal)
    counts: dict[int, int] = defaultdict(int)
    missing: dict[int, set[str]] = defaultdict(set)
    for position in positions:
        account = figures.get(position.account_id)
        if account is None:
            continue
        counts[account.account_id] += 1
        quote = quotes.get(position.symbol)
        spec = terms.get((account.server, position.symbol))
        if quote is None or spec is None:
            missing[account.account_id].add(
                f"quote {position.symbol}" if quote is None else f"spec {position.symbol}")
            continue
        profit = position_profit(position, quote=quote, terms=spec,
                                 deposit_currency=account.currency, quotes=quotes)
        if profit is None:
            missing[account.account_id].add(
                f"conversion {spec.currency_profit}->{account.currency}")
            continue
        floating[account.account_id] += profit + position.swap
    return {account_id: _estimate(account, floating[account_id], counts[account_id],
                                  missing.get(account_id), thresholds, near_critical_points)
            for account_id, account in figures.items()}


def _estimate(account: AccountFigures, floating: Decimal, count: int,
              missing: set[str] | None, thresholds: DrawdownThresholds,
              near_critical_points: Decimal) -> EquityEstimate:
    if missing:
        return EquityEstimate(account.account_id, Estimate.UNKNOWN, None, None, None, count,
                              tuple(sorted(missing)))
    equity = money(account.balance + account.credit + floating)
    standing, drawdown = classify(equity=equity, peak_equity=account.peak_equity,
                                  thresholds=thresholds,
                                  near_critical_points=near_critical_points)
    return EquityEstimate(account.account_id, standing, equity, money(floating), drawdown,
                          count)


#: Buckets for the histogram ``guard_estimate_error_percent`` (signed, percent of the read
#: equity): symmetric around 0, finer near it.
ESTIMATE_ERROR_BUCKETS = (-5.0, -2.0, -1.0, -0.5, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2,
                          0.5, 1.0, 2.0, 5.0)


def estimate_error_percent(*, estimated_equity: Decimal, read_equity: Decimal) -> Decimal | None:
    """The estimate's error against the next real read, percent of the read equity, signed
    (positive: the estimate was too high, i.e. it hid a loss), unrounded:
    ``(estimated − read) / read × 100``. Both in the deposit currency. None when the read
    equity is not positive (no meaningful percentage). For the histogram
    ``guard_estimate_error_percent`` (buckets ``ESTIMATE_ERROR_BUCKETS``)."""
    if read_equity <= 0:
        return None
    return (estimated_equity - read_equity) / read_equity * HUNDRED
