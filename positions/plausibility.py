"""Whether an account read adds up (pure, no database).

MetaTrader 5 defines equity as balance + credit + the floating profit of the open positions
(each position's ``profit`` plus its ``swap``; commissions are charged to the balance when a
deal is made), free margin as equity − margin, and the margin level as equity ÷ margin ×
100 (MetaTrader 5 docs: AccountInfoDouble, ACCOUNT_EQUITY, ACCOUNT_MARGIN_FREE,
ACCOUNT_MARGIN_LEVEL). A read whose figures break these identities beyond a tolerance was
not taken at one instant (a tick between ``account_info`` and ``positions_get``) or was not
made by a terminal at all: an EA push that does not add up never reaches the guard.

All money is in the account currency; percentages are of the base they name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from brokers.gateway import AccountState, BrokerPosition, Deal

CENT = Decimal("0.01")
#: Brokers whose equity is balance + credit + Σ(profit + swap): MetaTrader 5's. Interactive
#: Brokers' is not: a stock's cost has left the cash (TotalCashValue) while its market value
#: counts in NetLiquidation (equity = cash + Σ market value, a figure the positions do not
#: carry in the account currency), and IB computes its account values in one snapshot of
#: its own, so neither the re-read nor the residual applies to it.
IDENTITY_BROKERS = frozenset({"mt5"})
#: The smallest tolerance, in account currency, whatever the balance.
MIN_TOLERANCE = Decimal("1.00")
#: Margin at most this many times the notional ÷ leverage: margin rates above 100 %
#: (exotics, CFDs) and a quote currency worth more than the account's stay inside.
MARGIN_SLACK = Decimal(5)


def identity_residual(*, state: AccountState, positions: Iterable[BrokerPosition]) -> Decimal:
    """equity − (balance + credit + Σ(profit + swap)), in account currency, to the cent.

    Zero for a read taken at one instant; a tick between the account and the positions
    reads leaves about volume × contract size × one tick (7.14 on 7.14 lots of EURUSD).
    """
    floating = sum((p.profit + p.swap for p in positions), Decimal(0))
    return (state.equity - (state.balance + state.credit + floating)).quantize(CENT)


def read_tolerance(*, positions: int) -> Decimal:
    """How far a pulled read's identity may be off from cent rounding alone: half a cent per
    rounded figure (equity, balance, each position's profit and swap), at least a cent."""
    return max(CENT, CENT * (positions + 1))


def tolerance(*, balance: Decimal, percent: Decimal) -> Decimal:
    """``percent`` of the balance, at least ``MIN_TOLERANCE``."""
    return max(MIN_TOLERANCE, abs(balance) * percent / 100)


@dataclass(frozen=True, slots=True)
class Previous:
    """The last good read of the account (its stored figures)."""

    equity: Decimal
    balance: Decimal


@dataclass(frozen=True, slots=True)
class Implausible:
    """Why a read was refused: ``check`` is one of ``equity_identity``, ``free_margin``,
    ``margin_level``, ``margin`` and ``jump``; ``reason`` says it with the figures."""

    check: str
    reason: str


def read_implausibility(*, state: AccountState, positions: tuple[BrokerPosition, ...],
                        deals: Iterable[Deal], previous: Previous | None,
                        contract_sizes: Mapping[str, Decimal], tolerance_percent: Decimal,
                        max_jump_percent: Decimal) -> Implausible | None:
    """The first check ``state`` fails, or None when it is plausible.

    1. equity ≈ balance + credit + Σ(profit + swap), within ``tolerance_percent`` of the
       balance (at least 1.00);
    2. margin consistent with leverage and positions: free margin ≈ equity − margin;
       margin level ≈ equity ÷ margin × 100 (within 1 %); no margin without positions; and,
       when every symbol's contract size is known, margin ≤ 5 × Σ(volume × contract size ×
       price) ÷ leverage (an upper bound only: hedged positions need less);
    3. against ``previous``, the last good read: equity moved by at most
       ``max_jump_percent`` of the previous equity once the balance operations among
       ``deals`` (deposits, withdrawals, credit) are taken out; a closing deal moves the
       balance, not the equity, so only cash flows explain an equity jump.
    """
    tol = tolerance(balance=state.balance, percent=tolerance_percent)
    residual = identity_residual(state=state, positions=positions)
    if abs(residual) > tol:
        return Implausible("equity_identity",
                           f"equity {state.equity} is not balance {state.balance} + credit "
                           f"{state.credit} + positions' profit and swap (off by {residual}, "
                           f"tolerance {tol.quantize(CENT)})")
    if abs(state.free_margin - (state.equity - state.margin)) > tol:
        return Implausible("free_margin",
                           f"free margin {state.free_margin} is not equity {state.equity} − "
                           f"margin {state.margin}")
    if state.margin > 0 and state.margin_level is not None:
        level = state.equity / state.margin * 100
        if abs(state.margin_level - level) > max(Decimal("0.1"), abs(level) / 100):
            return Implausible("margin_level",
                               f"margin level {state.margin_level} % is not equity ÷ margin "
                               f"({level.quantize(CENT)} %)")
    if not positions and state.margin > tol:
        return Implausible("margin", f"margin {state.margin} without any open position")
    if positions and all(p.symbol in contract_sizes for p in positions):
        notional = sum((p.volume * contract_sizes[p.symbol] * p.price_current
                        for p in positions), Decimal(0))
        ceiling = MARGIN_SLACK * notional / max(state.leverage, 1) + tol
        if state.margin > ceiling:
            return Implausible("margin",
                               f"margin {state.margin} is more than the positions need at "
                               f"1:{state.leverage} (at most {ceiling.quantize(CENT)})")
    if previous is not None:
        cash = sum((d.cash_flow for d in deals), Decimal(0))
        moved = state.equity - previous.equity - cash
        limit = max(abs(previous.equity) * max_jump_percent / 100, tol)
        if abs(moved) > limit:
            return Implausible("jump",
                               f"equity moved from {previous.equity} to {state.equity} "
                               f"({moved:+} beyond cash flows of {cash}), more than "
                               f"{max_jump_percent} % of the last good read, and no deal "
                               "explains it")
    return None
