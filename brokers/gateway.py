"""The broker gateway port: what the apps may ask of any broker, in frozen dataclasses.

Apps call a ``BrokerGateway``; they never import an adapter. Every figure is ``Decimal``,
every time is an aware UTC ``datetime``. Money is in the account's deposit currency unless a
field says otherwise; prices are in the symbol's quote currency; volume is in lots.

Errors: a gateway raises only ``BrokerError`` subclasses (``brokers.errors``). A failed or
timed-out read raises ``BrokerUnavailable``: the caller must treat the account as *unknown*,
never as flat. An empty ``positions()`` list means the broker said "no positions".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable


class Side(enum.StrEnum):
    """A position's or an order's direction: the one side type of the project (gateway,
    models, P&L, matching, sizing). Stored as its value, "buy" or "sell"."""

    BUY = "buy"
    SELL = "sell"

    @classmethod
    def _missing_(cls, value: object) -> Side:
        raise ValueError(f"side must be 'buy' or 'sell', got {value!r}")

    @property
    def sign(self) -> int:
        """+1 for a buy, −1 for a sell: a price move times this is the position's gain."""
        return 1 if self is Side.BUY else -1

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(value, label) pairs for a model or serializer field."""
        return [(side.value, side.value.title()) for side in cls]


class DealReason(enum.StrEnum):
    """Why a deal happened (MetaTrader 5: ENUM_DEAL_REASON, reduced to what we act on)."""

    CLIENT = "client"  # desktop, mobile or web terminal: a person
    EXPERT = "expert"  # an Expert Advisor or a script: the bot
    SL = "sl"
    TP = "tp"
    SO = "so"  # stop-out
    OTHER = "other"  # rollover, variation margin, split


class DealKind(enum.StrEnum):
    """What a deal is (MetaTrader 5: ENUM_DEAL_TYPE, grouped).

    ``buy``/``sell`` are trades. Every other kind is a *balance operation*: money that moves
    the balance (or the credit) without a trade. The guards treat all of them as cash flows
    that move the high-water mark, so drawdown measures trading loss only.
    """

    TRADE = "trade"  # DEAL_TYPE_BUY, DEAL_TYPE_SELL
    BALANCE = "balance"  # DEAL_TYPE_BALANCE: deposit (> 0) or withdrawal (< 0)
    CREDIT = "credit"  # DEAL_TYPE_CREDIT: broker credit, counted in equity
    CHARGE = "charge"  # DEAL_TYPE_CHARGE
    CORRECTION = "correction"  # DEAL_TYPE_CORRECTION
    BONUS = "bonus"  # DEAL_TYPE_BONUS
    COMMISSION = "commission"  # DEAL_TYPE_COMMISSION and its daily/monthly/agent variants
    INTEREST = "interest"  # DEAL_TYPE_INTEREST
    DIVIDEND = "dividend"  # DEAL_TYPE_DIVIDEND, DEAL_TYPE_DIVIDEND_FRANKED
    TAX = "tax"  # DEAL_TYPE_TAX
    CANCELED = "canceled"  # DEAL_TYPE_BUY_CANCELED, DEAL_TYPE_SELL_CANCELED
    OTHER = "other"  # a type this code does not know: not a cash flow, logged

    @property
    def is_cash_flow(self) -> bool:
        """True for balance operations (every kind but trades, cancellations and unknown)."""
        return self not in (DealKind.TRADE, DealKind.CANCELED, DealKind.OTHER)


@dataclass(frozen=True, slots=True)
class AccountState:
    """Account figures, in ``currency`` (MetaTrader 5: AccountInfo).

    ``margin_level`` is equity / margin × 100 in percent, ``None`` when no margin is used.
    ``margin_so_call`` and ``margin_so_so`` are the margin call and stop-out levels in percent.
    """

    login: int
    server: str
    currency: str
    leverage: int
    balance: Decimal
    credit: Decimal
    profit: Decimal
    equity: Decimal
    margin: Decimal
    free_margin: Decimal
    margin_level: Decimal | None
    margin_so_call: Decimal
    margin_so_so: Decimal
    trade_allowed: bool
    server_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    """One open position (MetaTrader 5: TradePosition).

    ``profit`` and ``swap`` are in the account currency, as the broker reports them.
    ``identifier`` is MetaTrader 5's ``TradePosition.identifier``: the position id its deals
    carry in ``position_id``. It never changes, while the ``ticket`` may (a server that
    re-opens positions on swap gives them a new ticket). 0 means the source did not say,
    and ``position_id`` falls back to the ticket. ``opened_at`` is aware UTC (the adapter
    converts from the trade server's time zone).
    """

    ticket: int
    symbol: str
    side: Side
    volume: Decimal
    price_open: Decimal
    price_current: Decimal
    sl: Decimal | None
    tp: Decimal | None
    swap: Decimal
    profit: Decimal
    magic: int
    comment: str
    opened_at: datetime
    identifier: int = 0

    @property
    def position_id(self) -> int:
        """The id that joins this position to its deals (``Deal.position_id``)."""
        return self.identifier or self.ticket


#: ``BrokerPosition.opened_at`` when the broker no longer knows when the position opened
#: (Interactive Brokers: the opening execution is older than the execution history it
#: keeps); a stored opening time is kept over it.
OPENED_AT_UNKNOWN = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Deal:
    """One deal from the account history (MetaTrader 5: TradeDeal).

    ``entry`` is "in", "out", "inout" or "out_by"; ``profit``, ``swap``, ``commission`` and
    ``fee`` are in the account currency. ``kind`` tells trades from balance operations
    (deposits, withdrawals, credit, …: ``DealKind``); ``time`` is aware UTC.
    """

    ticket: int
    order: int
    position_id: int
    symbol: str
    side: Side | None
    entry: str
    reason: DealReason
    volume: Decimal
    price: Decimal
    profit: Decimal
    swap: Decimal
    commission: Decimal
    fee: Decimal
    magic: int
    comment: str
    time: datetime
    kind: DealKind = DealKind.TRADE

    @property
    def net_profit(self) -> Decimal:
        """profit + swap + commission + fee, in the account currency."""
        return self.profit + self.swap + self.commission + self.fee

    @property
    def cash_flow(self) -> Decimal:
        """The money a balance operation moved (positive in, negative out), in the account
        currency; 0 for a trade."""
        return self.net_profit if self.kind.is_cash_flow else Decimal(0)


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and ask, in the symbol's quote currency."""

    symbol: str
    bid: Decimal
    ask: Decimal
    time: datetime


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Trading rules of one symbol (MetaTrader 5: SymbolInfo).

    ``tick_value`` is the value of one ``tick_size`` move for one lot, in the account
    currency, as the terminal reports it at the time of the call. ``tick_value_loss`` is
    the same for a losing move (MetaTrader 5: ``trade_tick_value_loss``,
    SYMBOL_TRADE_TICK_VALUE_LOSS, converted at the less favourable rate), ``None`` when the
    broker does not report it. ``filling_modes`` is a set of "fok" / "ioc".
    """

    symbol: str
    digits: int
    point: Decimal
    contract_size: Decimal
    tick_size: Decimal
    tick_value: Decimal
    volume_min: Decimal
    volume_step: Decimal
    volume_max: Decimal
    currency_base: str
    currency_profit: str
    currency_margin: str
    filling_modes: frozenset[str]
    calc_mode: str  # "forex" or "cfd"
    tick_value_loss: Decimal | None = None

    @property
    def loss_tick_value(self) -> Decimal:
        """The tick value to size a stop with: the loss tick value when reported, so the
        loss at the stop never exceeds the budget; else ``tick_value``."""
        return self.tick_value_loss if self.tick_value_loss else self.tick_value


@dataclass(frozen=True, slots=True)
class CloseResult:
    """Outcome of one close attempt.

    ``done`` means the position is closed (or already was). ``partial`` means part of the
    requested volume was filled (MetaTrader 5: TRADE_RETCODE_DONE_PARTIAL, or a fill below
    the request): ``price`` and ``volume`` are the fill's, and the rest is still open.
    ``retryable`` means sending again with a fresh price may succeed. ``ambiguous`` means
    the outcome is unknown: look the position and its deals up before sending again.
    """

    ticket: int
    retcode: int
    comment: str
    price: Decimal | None
    volume: Decimal | None
    deal: int | None
    done: bool
    retryable: bool
    ambiguous: bool
    partial: bool = False


@dataclass(frozen=True, slots=True)
class OrderResult:
    """Outcome of one market order that opens a position.

    ``ticket`` is the new position's ticket when ``done``. ``volume`` may be below the
    requested one (a partial fill). ``ambiguous`` means the outcome is unknown.
    """

    retcode: int
    comment: str
    ticket: int | None
    price: Decimal | None
    volume: Decimal | None
    done: bool
    retryable: bool
    ambiguous: bool


@dataclass(frozen=True, slots=True)
class Bar:
    """One H1 bar: its open time, open and close, in the quote currency."""

    time: datetime
    open: Decimal
    close: Decimal


@runtime_checkable
class BrokerGateway(Protocol):
    """One broker account, seen through one adapter."""

    def account_state(self) -> AccountState: ...

    def positions(self) -> list[BrokerPosition]: ...

    def deals(self, since: datetime, until: datetime | None = None) -> list[Deal]: ...

    def quote(self, symbol: str) -> Quote: ...

    def symbol_spec(self, symbol: str) -> SymbolSpec: ...

    def close_position(self, ticket: int, volume: Decimal | None, tag: str) -> CloseResult: ...

    def margin_required(self, symbol: str, side: Side, volume: Decimal,
                        price: Decimal) -> Decimal: ...

    def recent_bars(self, symbol: str, count: int = 2) -> list[Bar]: ...

    def open_position(self, symbol: str, side: Side, volume: Decimal, *, sl: Decimal | None,
                      tp: Decimal | None, tag: str) -> OrderResult: ...
