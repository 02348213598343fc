"""Accounts, positions and deals of the simulated trade server, and the MetaTrader 5 formulas.

Units: prices are EURUSD quotes in USD per EUR (5 digits); volumes are lots of 100 000 EUR;
money is in the account's deposit currency (USD, EUR or GBP), 2 decimals, ROUND_HALF_UP.

SIMULATION ASSUMPTION: there is no GBPUSD price file, so GBP accounts convert USD at the
FIXED rate ``GBPUSD_RATE`` = 1.25000 USD per GBP. GBP figures are therefore exact for the
simulation but are not what a real broker would have shown on the replayed dates. Only the
profit tick value sees a GBPUSD ask, ``GBPUSD_RATE + GBPUSD_SPREAD``.

Times are kept in true UTC here; the ``*_tuple`` builders add ``shift`` (the trade server's
UTC offset) to every epoch they report, as a real terminal reports server wall-clock time.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from brokers import mt5_api as mt5

SYMBOL = "EURUSD"
CONTRACT_SIZE = Decimal(100000)  # EUR per lot
DIGITS = 5
POINT = Decimal("0.00001")
TICK_SIZE = POINT
VOLUME_MIN = Decimal("0.01")
VOLUME_STEP = Decimal("0.01")
VOLUME_MAX = Decimal(100)
GBPUSD_RATE = Decimal("1.25000")  # SIMULATION ASSUMPTION, see the module docstring
GBPUSD_SPREAD = Decimal("0.00012")  # the ask side, for the profit tick value only
NO_SHIFT = timedelta(0)
CURRENCIES = ("USD", "EUR", "GBP")
COMPANY = "SimBroker Ltd. (simulated)"
COMMENT_MAX = 31  # MetaTrader 5 keeps 31 characters of an order comment
CENT = Decimal("0.01")


def money(amount: Decimal) -> Decimal:
    """Round a money figure to 2 decimals, half up (MetaTrader 5 currency_digits = 2)."""
    return amount.quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class SimAccount:
    """A trading account on the simulated server. ``balance`` is the initial deposit in
    ``currency``; ``margin_so_call`` / ``margin_so_so`` are margin-level percents."""

    login: int
    password: str  # master password: full access
    investor_password: str  # read-only access
    server: str
    currency: str  # "USD" | "EUR" | "GBP"
    leverage: int
    balance: Decimal
    name: str
    margin_so_call: Decimal = Decimal(100)
    margin_so_so: Decimal = Decimal(50)

    def __post_init__(self) -> None:
        if self.currency not in CURRENCIES:
            raise ValueError(f"unsupported account currency {self.currency!r}")
        if self.leverage <= 0:
            raise ValueError("leverage must be positive")
        for name in ("balance", "margin_so_call", "margin_so_so"):
            object.__setattr__(self, name, Decimal(str(getattr(self, name))))


@dataclass(frozen=True, slots=True)
class Quote:
    """EURUSD bid and ask (USD per EUR) at server time ``time`` (aware UTC)."""

    bid: Decimal
    ask: Decimal
    time: datetime


@dataclass(slots=True)
class SimPosition:
    ticket: int  # the opening order's ticket, until sim_reticket gives it a new one
    type: int  # POSITION_TYPE_BUY | POSITION_TYPE_SELL
    volume: Decimal
    price_open: Decimal
    sl: Decimal | None
    tp: Decimal | None
    magic: int
    comment: str
    reason: int  # POSITION_REASON_*
    time: datetime
    time_update: datetime
    symbol: str = SYMBOL
    identifier: int = 0  # the opening order's ticket, for good; deals carry it (position_id)

    def __post_init__(self) -> None:
        if not self.identifier:
            self.identifier = self.ticket

    @property
    def is_buy(self) -> bool:
        return self.type == mt5.POSITION_TYPE_BUY

    def close_price(self, quote: Quote) -> Decimal:
        """A buy closes at the bid, a sell at the ask."""
        return quote.bid if self.is_buy else quote.ask


@dataclass(frozen=True, slots=True)
class SimDeal:
    ticket: int
    order: int
    time: datetime
    type: int  # DEAL_TYPE_*
    entry: int  # DEAL_ENTRY_*
    magic: int
    position_id: int
    reason: int  # DEAL_REASON_*
    volume: Decimal
    price: Decimal
    profit: Decimal  # account currency, realized on an OUT deal; the amount of a balance deal
    symbol: str
    comment: str


def profit_usd(position_type: int, volume: Decimal, price_open: Decimal,
               price_close: Decimal) -> Decimal:
    """MetaTrader 5 forex profit, in USD (the profit currency), unrounded:
    buy (close - open) * contract_size * lots; sell (open - close) * contract_size * lots."""
    move = price_close - price_open
    if position_type != mt5.POSITION_TYPE_BUY:
        move = -move
    return move * CONTRACT_SIZE * volume


def usd_to_account(amount_usd: Decimal, currency: str, eurusd: Decimal) -> Decimal:
    """USD -> deposit currency, unrounded: EUR divides by the EURUSD bid, GBP by the fixed
    ``GBPUSD_RATE`` (simulation assumption)."""
    if currency == "EUR":
        return amount_usd / eurusd
    if currency == "GBP":
        return amount_usd / GBPUSD_RATE
    return amount_usd


def eur_to_account(amount_eur: Decimal, currency: str, eurusd: Decimal) -> Decimal:
    """EUR -> deposit currency, unrounded: USD x EURUSD bid, GBP x EURUSD / GBPUSD_RATE."""
    return amount_eur if currency == "EUR" else usd_to_account(amount_eur * eurusd, currency,
                                                               eurusd)


def margin_required(volume: Decimal, leverage: int, currency: str, eurusd: Decimal) -> Decimal:
    """MetaTrader 5 forex margin: lots * contract_size / leverage, in EUR (the margin
    currency), converted to the deposit currency at the CURRENT EURUSD bid (a choice of this
    simulation: real servers may fix the rate at the open). Unrounded."""
    return eur_to_account(volume * CONTRACT_SIZE / leverage, currency, eurusd)


def tick_value(currency: str, eurusd: Decimal) -> Decimal:
    """Value of one tick (0.00001) for one lot, in the deposit currency: 1 USD converted at
    the bid side (EURUSD bid, GBPUSD_RATE), as realized profit is. This is also the loss
    tick value (``tick_values``)."""
    return usd_to_account(TICK_SIZE * CONTRACT_SIZE, currency, eurusd)


def tick_values(currency: str, bid: Decimal, ask: Decimal) -> tuple[Decimal, Decimal]:
    """(profit, loss) tick value of EURUSD for one lot in the deposit currency (MetaTrader 5:
    SYMBOL_TRADE_TICK_VALUE_PROFIT / _LOSS). A tick is 1 USD. A USD profit is converted at
    the side that gives fewer deposit-currency units, a USD loss at the side that costs
    more: EUR account 1/ask vs 1/bid of EURUSD, GBP account 1/(GBPUSD_RATE +
    GBPUSD_SPREAD) vs 1/GBPUSD_RATE. So loss >= profit; equal for a USD account."""
    usd = TICK_SIZE * CONTRACT_SIZE
    if currency == "EUR":
        return usd / ask, usd / bid
    if currency == "GBP":
        return usd / (GBPUSD_RATE + GBPUSD_SPREAD), usd / GBPUSD_RATE
    return usd, usd


def position_profit(position: SimPosition, quote: Quote, currency: str,
                    volume: Decimal | None = None) -> Decimal:
    """Floating profit of ``volume`` (default: all) of a position, in the deposit currency,
    rounded to cents. A buy is valued at the bid, a sell at the ask."""
    usd = profit_usd(position.type, position.volume if volume is None else volume,
                     position.price_open, position.close_price(quote))
    return money(usd_to_account(usd, currency, quote.bid))


@dataclass(frozen=True, slots=True)
class Figures:
    """Account figures in the deposit currency (MetaTrader 5: AccountInfo)."""

    balance: Decimal
    credit: Decimal
    profit: Decimal
    equity: Decimal
    margin: Decimal
    margin_free: Decimal
    margin_level: Decimal  # percent; 0 when no margin is used, as MetaTrader 5 reports


@dataclass(slots=True)
class Book:
    """The server-side state of one account."""

    spec: SimAccount
    balance: Decimal
    credit: Decimal = Decimal(0)
    positions: dict[int, SimPosition] = field(default_factory=dict)
    deals: list[SimDeal] = field(default_factory=list)

    @property
    def currency(self) -> str:
        return self.spec.currency

    def figures(self, quote: Quote, extra: Iterable[SimPosition] = ()) -> Figures:
        """equity = balance + credit + sum(profit + swap); margin_free = equity - margin;
        margin_level = equity / margin * 100 (MetaTrader 5 definitions). Swap is 0 here.
        ``extra`` adds hypothetical positions (the free-margin check of a new order)."""
        positions = [*self.positions.values(), *extra]
        profit = sum((position_profit(p, quote, self.currency) for p in positions), Decimal(0))
        margin = money(sum((margin_required(p.volume, self.spec.leverage, self.currency,
                                            quote.bid) for p in positions), Decimal(0)))
        equity = self.balance + self.credit + profit
        level = money(equity / margin * 100) if margin else Decimal(0)
        return Figures(self.balance, self.credit, profit, equity, margin, equity - margin, level)

    def most_losing(self, quote: Quote) -> SimPosition:
        """The position with the lowest floating profit (oldest first on a tie)."""
        return min(self.positions.values(),
                   key=lambda p: (position_profit(p, quote, self.currency), p.ticket))


def matches_group(symbol: str, group: str | None) -> bool:
    """MetaTrader 5 ``group`` filter: comma-separated masks with ``*``; a mask starting with
    ``!`` excludes. The symbol must match an inclusion mask and no exclusion mask."""
    if not group:
        return True
    included = False
    for mask in (m.strip() for m in group.split(",")):
        if mask.startswith("!"):
            if fnmatch.fnmatchcase(symbol, mask[1:]):
                return False
        elif mask and fnmatch.fnmatchcase(symbol, mask):
            included = True
    return included


def epoch(moment: datetime, shift: timedelta = NO_SHIFT) -> int:
    """Epoch seconds of ``moment + shift`` (``shift``: the server's UTC offset)."""
    return int((moment + shift).timestamp())


def epoch_msc(moment: datetime, shift: timedelta = NO_SHIFT) -> int:
    return int((moment + shift).timestamp() * 1000)


def position_tuple(position: SimPosition, quote: Quote, currency: str,
                   shift: timedelta = NO_SHIFT) -> mt5.TradePosition:
    """A position as the MetaTrader5 package returns it (floats and ints; times in server
    time, ``shift`` ahead of UTC)."""
    opened, updated = position.time, position.time_update
    return mt5.TradePosition(
        ticket=position.ticket, time=epoch(opened, shift), time_msc=epoch_msc(opened, shift),
        time_update=epoch(updated, shift), time_update_msc=epoch_msc(updated, shift),
        type=position.type, magic=position.magic, identifier=position.identifier,
        reason=position.reason, volume=float(position.volume),
        price_open=float(position.price_open), sl=float(position.sl or 0),
        tp=float(position.tp or 0), price_current=float(position.close_price(quote)), swap=0.0,
        profit=float(position_profit(position, quote, currency)), symbol=position.symbol,
        comment=position.comment, external_id="",
    )


def deal_tuple(deal: SimDeal, shift: timedelta = NO_SHIFT) -> mt5.TradeDeal:
    """A deal as the MetaTrader5 package returns it (floats and ints; server time)."""
    return mt5.TradeDeal(
        ticket=deal.ticket, order=deal.order, time=epoch(deal.time, shift),
        time_msc=epoch_msc(deal.time, shift), type=deal.type, entry=deal.entry, magic=deal.magic,
        position_id=deal.position_id, reason=deal.reason, volume=float(deal.volume),
        price=float(deal.price), commission=0.0, swap=0.0, profit=float(deal.profit), fee=0.0,
        symbol=deal.symbol, comment=deal.comment, external_id="",
    )


def account_tuple(book: Book, quote: Quote, *, trade_allowed: bool) -> mt5.AccountInfo:
    """An account as the MetaTrader5 package returns it (floats and ints)."""
    f = book.figures(quote)
    spec = book.spec
    return mt5.AccountInfo(
        login=spec.login, trade_mode=mt5.ACCOUNT_TRADE_MODE_DEMO, leverage=spec.leverage,
        limit_orders=200, margin_so_mode=mt5.ACCOUNT_STOPOUT_MODE_PERCENT,
        trade_allowed=trade_allowed, trade_expert=True,
        margin_mode=mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING, currency_digits=2, fifo_close=False,
        balance=float(f.balance), credit=float(f.credit), profit=float(f.profit),
        equity=float(f.equity), margin=float(f.margin), margin_free=float(f.margin_free),
        margin_level=float(f.margin_level), margin_so_call=float(spec.margin_so_call),
        margin_so_so=float(spec.margin_so_so), margin_initial=0.0, margin_maintenance=0.0,
        assets=0.0, liabilities=0.0, commission_blocked=0.0, name=spec.name,
        server=spec.server, currency=spec.currency, company=COMPANY,
    )


def symbol_tuple(quote: Quote, currency: str, spread_points: int,
                 shift: timedelta = NO_SHIFT) -> mt5.SymbolInfo:
    """EURUSD's specification, with the tick values in the deposit ``currency``
    (``trade_tick_value`` at the bid side, as before: see ``tick_values``)."""
    tv = float(tick_value(currency, quote.bid))
    profit_tv, loss_tv = (float(v) for v in tick_values(currency, quote.bid, quote.ask))
    return mt5.SymbolInfo(
        custom=False, visible=True, select=True, time=epoch(quote.time, shift), digits=DIGITS,
        spread=spread_points, spread_float=False, trade_calc_mode=mt5.SYMBOL_CALC_MODE_FOREX,
        trade_mode=mt5.SYMBOL_TRADE_MODE_FULL, trade_stops_level=0, trade_freeze_level=0,
        filling_mode=mt5.SYMBOL_FILLING_FOK | mt5.SYMBOL_FILLING_IOC, bid=float(quote.bid),
        ask=float(quote.ask), last=0.0, volume=0, point=float(POINT), trade_tick_value=tv,
        trade_tick_value_profit=profit_tv, trade_tick_value_loss=loss_tv,
        trade_tick_size=float(TICK_SIZE),
        trade_contract_size=float(CONTRACT_SIZE), volume_min=float(VOLUME_MIN),
        volume_max=float(VOLUME_MAX), volume_step=float(VOLUME_STEP), swap_long=0.0,
        swap_short=0.0, margin_initial=0.0, margin_maintenance=0.0, currency_base="EUR",
        currency_profit="USD", currency_margin="EUR", description="Euro vs US Dollar",
        path="Forex\\EURUSD", name=SYMBOL,
    )


def tick_tuple(quote: Quote, shift: timedelta = NO_SHIFT) -> mt5.Tick:
    return mt5.Tick(time=epoch(quote.time, shift), bid=float(quote.bid), ask=float(quote.ask),
                    last=0.0, volume=0, time_msc=epoch_msc(quote.time, shift), flags=6,
                    volume_real=0.0)
