"""The surface of the ``MetaTrader5`` Python module that this project uses.

The real package (Windows wheels only) returns namedtuples and exposes integer constants.
This module repeats the constants and the namedtuple field names, exactly as the package
names them (MetaTrader 5 docs: "Python Integration"), so that the simulated terminal, the
terminal bridge and the mt5 adapter all speak the same shapes without importing the real
package. Nothing here imports Django.
"""

from __future__ import annotations

from collections import namedtuple

from brokers.gateway import DealKind, DealReason, Side

# --- last_error() result codes (MetaTrader 5 docs: last_error) ---
RES_S_OK = 1
RES_E_FAIL = -1
RES_E_INVALID_PARAMS = -2
RES_E_NO_MEMORY = -3
RES_E_NOT_FOUND = -4
RES_E_INVALID_VERSION = -5
RES_E_AUTH_FAILED = -6
RES_E_UNSUPPORTED = -7
RES_E_AUTO_TRADING_DISABLED = -8
RES_E_INTERNAL_FAIL = -10000
RES_E_INTERNAL_FAIL_SEND = -10001
RES_E_INTERNAL_FAIL_RECEIVE = -10002
RES_E_INTERNAL_FAIL_INIT = -10003
RES_E_INTERNAL_FAIL_CONNECT = -10004
RES_E_INTERNAL_FAIL_TIMEOUT = -10005

# --- trade server return codes (MetaTrader 5 docs: Trade Server Return Codes) ---
TRADE_RETCODE_REQUOTE = 10004
TRADE_RETCODE_REJECT = 10006
TRADE_RETCODE_CANCEL = 10007
TRADE_RETCODE_PLACED = 10008
TRADE_RETCODE_DONE = 10009
TRADE_RETCODE_DONE_PARTIAL = 10010
TRADE_RETCODE_ERROR = 10011
TRADE_RETCODE_TIMEOUT = 10012
TRADE_RETCODE_INVALID = 10013
TRADE_RETCODE_INVALID_VOLUME = 10014
TRADE_RETCODE_INVALID_PRICE = 10015
TRADE_RETCODE_INVALID_STOPS = 10016
TRADE_RETCODE_TRADE_DISABLED = 10017
TRADE_RETCODE_MARKET_CLOSED = 10018
TRADE_RETCODE_NO_MONEY = 10019
TRADE_RETCODE_PRICE_CHANGED = 10020
TRADE_RETCODE_PRICE_OFF = 10021
TRADE_RETCODE_INVALID_EXPIRATION = 10022
TRADE_RETCODE_ORDER_CHANGED = 10023
TRADE_RETCODE_TOO_MANY_REQUESTS = 10024
TRADE_RETCODE_NO_CHANGES = 10025
TRADE_RETCODE_SERVER_DISABLES_AT = 10026
TRADE_RETCODE_CLIENT_DISABLES_AT = 10027
TRADE_RETCODE_LOCKED = 10028
TRADE_RETCODE_FROZEN = 10029
TRADE_RETCODE_INVALID_FILL = 10030
TRADE_RETCODE_CONNECTION = 10031
TRADE_RETCODE_ONLY_REAL = 10032
TRADE_RETCODE_LIMIT_ORDERS = 10033
TRADE_RETCODE_LIMIT_VOLUME = 10034
TRADE_RETCODE_INVALID_ORDER = 10035
TRADE_RETCODE_POSITION_CLOSED = 10036

# --- orders, positions, deals ---
TRADE_ACTION_DEAL = 1
ORDER_TYPE_BUY = 0
ORDER_TYPE_SELL = 1
ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_FILLING_RETURN = 2
ORDER_TIME_GTC = 0
POSITION_TYPE_BUY = 0
POSITION_TYPE_SELL = 1
# ENUM_DEAL_TYPE: 0..14 as in the MetaTrader5 wheel 5.0.6231 (its __init__.py); 15..17
# (MQL5 names DEAL_DIVIDEND, DEAL_DIVIDEND_FRANKED, DEAL_TAX) follow in the MQL5 docs' order.
DEAL_TYPE_BUY = 0
DEAL_TYPE_SELL = 1
DEAL_TYPE_BALANCE = 2  # deposit (> 0) or withdrawal (< 0)
DEAL_TYPE_CREDIT = 3
DEAL_TYPE_CHARGE = 4
DEAL_TYPE_CORRECTION = 5
DEAL_TYPE_BONUS = 6
DEAL_TYPE_COMMISSION = 7
DEAL_TYPE_COMMISSION_DAILY = 8
DEAL_TYPE_COMMISSION_MONTHLY = 9
DEAL_TYPE_COMMISSION_AGENT_DAILY = 10
DEAL_TYPE_COMMISSION_AGENT_MONTHLY = 11
DEAL_TYPE_INTEREST = 12
DEAL_TYPE_BUY_CANCELED = 13
DEAL_TYPE_SELL_CANCELED = 14
DEAL_TYPE_DIVIDEND = DEAL_DIVIDEND = 15
DEAL_TYPE_DIVIDEND_FRANKED = DEAL_DIVIDEND_FRANKED = 16
DEAL_TYPE_TAX = DEAL_TAX = 17
DEAL_ENTRY_IN = 0
DEAL_ENTRY_OUT = 1
DEAL_ENTRY_INOUT = 2
DEAL_ENTRY_OUT_BY = 3
DEAL_REASON_CLIENT = 0
DEAL_REASON_MOBILE = 1
DEAL_REASON_WEB = 2
DEAL_REASON_EXPERT = 3
DEAL_REASON_SL = 4
DEAL_REASON_TP = 5
DEAL_REASON_SO = 6
DEAL_REASON_ROLLOVER = 7
DEAL_REASON_VMARGIN = 8
DEAL_REASON_SPLIT = 9
POSITION_REASON_CLIENT = 0
POSITION_REASON_MOBILE = 1
POSITION_REASON_WEB = 2
POSITION_REASON_EXPERT = 3

# --- timeframes (copy_rates_*) ---
TIMEFRAME_H1 = 16385

# --- symbols and accounts ---
SYMBOL_FILLING_FOK = 1  # flags in symbol_info().filling_mode
SYMBOL_FILLING_IOC = 2
SYMBOL_CALC_MODE_FOREX = 0
SYMBOL_CALC_MODE_CFD = 2
SYMBOL_TRADE_MODE_FULL = 4
ACCOUNT_TRADE_MODE_DEMO = 0
ACCOUNT_TRADE_MODE_REAL = 2
ACCOUNT_STOPOUT_MODE_PERCENT = 0
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2

# --- namedtuples, field names as the MetaTrader5 package returns them ---
AccountInfo = namedtuple(
    "AccountInfo",
    [
        "login", "trade_mode", "leverage", "limit_orders", "margin_so_mode",
        "trade_allowed", "trade_expert", "margin_mode", "currency_digits", "fifo_close",
        "balance", "credit", "profit", "equity", "margin", "margin_free", "margin_level",
        "margin_so_call", "margin_so_so", "margin_initial", "margin_maintenance", "assets",
        "liabilities", "commission_blocked", "name", "server", "currency", "company",
    ],
)
TradePosition = namedtuple(
    "TradePosition",
    [
        "ticket", "time", "time_msc", "time_update", "time_update_msc", "type", "magic",
        "identifier", "reason", "volume", "price_open", "sl", "tp", "price_current", "swap",
        "profit", "symbol", "comment", "external_id",
    ],
)
TradeDeal = namedtuple(
    "TradeDeal",
    [
        "ticket", "order", "time", "time_msc", "type", "entry", "magic", "position_id",
        "reason", "volume", "price", "commission", "swap", "profit", "fee", "symbol",
        "comment", "external_id",
    ],
)
SymbolInfo = namedtuple(
    "SymbolInfo",
    [
        "custom", "visible", "select", "time", "digits", "spread", "spread_float",
        "trade_calc_mode", "trade_mode", "trade_stops_level", "trade_freeze_level",
        "filling_mode", "bid", "ask", "last", "volume", "point", "trade_tick_value",
        "trade_tick_value_profit", "trade_tick_value_loss", "trade_tick_size",
        "trade_contract_size", "volume_min", "volume_max", "volume_step", "swap_long",
        "swap_short", "margin_initial", "margin_maintenance", "currency_base",
        "currency_profit", "currency_margin", "description", "path", "name",
    ],
)
Tick = namedtuple(
    "Tick", ["time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real"]
)
OrderSendResult = namedtuple(
    "OrderSendResult",
    [
        "retcode", "deal", "order", "volume", "price", "bid", "ask", "comment",
        "request_id", "retcode_external", "request",
    ],
)
# copy_rates_* answer a numpy structured array with these field names; the bridge sends
# its rows as records with the same names.
Rate = namedtuple(
    "Rate", ["time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"]
)
TerminalInfo = namedtuple(
    "TerminalInfo",
    ["connected", "trade_allowed", "name", "company", "path", "build", "ping_last"],
)

NAMEDTUPLES = {
    cls.__name__: cls
    for cls in (AccountInfo, TradePosition, TradeDeal, SymbolInfo, Tick, OrderSendResult,
                TerminalInfo, Rate)
}

# Retcodes after which a close may be retried with a fresh price (MetaTrader 5 docs).
RETRYABLE_RETCODES = frozenset(
    {
        TRADE_RETCODE_REQUOTE, TRADE_RETCODE_PRICE_CHANGED, TRADE_RETCODE_PRICE_OFF,
        TRADE_RETCODE_TOO_MANY_REQUESTS, TRADE_RETCODE_LOCKED, TRADE_RETCODE_FROZEN,
    }
)
# Retcodes that leave the outcome unknown: look the position up before sending again.
AMBIGUOUS_RETCODES = frozenset({TRADE_RETCODE_TIMEOUT, TRADE_RETCODE_CONNECTION})


# --- what a deal is (ENUM_DEAL_TYPE grouped: trades and balance operations) ---
_DEAL_KINDS = {
    DEAL_TYPE_BUY: DealKind.TRADE,
    DEAL_TYPE_SELL: DealKind.TRADE,
    DEAL_TYPE_BALANCE: DealKind.BALANCE,
    DEAL_TYPE_CREDIT: DealKind.CREDIT,
    DEAL_TYPE_CHARGE: DealKind.CHARGE,
    DEAL_TYPE_CORRECTION: DealKind.CORRECTION,
    DEAL_TYPE_BONUS: DealKind.BONUS,
    DEAL_TYPE_COMMISSION: DealKind.COMMISSION,
    DEAL_TYPE_COMMISSION_DAILY: DealKind.COMMISSION,
    DEAL_TYPE_COMMISSION_MONTHLY: DealKind.COMMISSION,
    DEAL_TYPE_COMMISSION_AGENT_DAILY: DealKind.COMMISSION,
    DEAL_TYPE_COMMISSION_AGENT_MONTHLY: DealKind.COMMISSION,
    DEAL_TYPE_INTEREST: DealKind.INTEREST,
    DEAL_TYPE_BUY_CANCELED: DealKind.CANCELED,
    DEAL_TYPE_SELL_CANCELED: DealKind.CANCELED,
    DEAL_TYPE_DIVIDEND: DealKind.DIVIDEND,
    DEAL_TYPE_DIVIDEND_FRANKED: DealKind.DIVIDEND,
    DEAL_TYPE_TAX: DealKind.TAX,
}


def deal_kind(deal_type: int) -> DealKind:
    """What a MetaTrader 5 deal type (ENUM_DEAL_TYPE) is: a trade or a balance operation;
    an unknown type is OTHER (not a cash flow). Used by the adapter and the EA push."""
    return _DEAL_KINDS.get(deal_type, DealKind.OTHER)


# --- decoding: the adapter (brokers.mt5) and the EA push (positions.push) both use these ---
_DEAL_REASONS = {
    DEAL_REASON_CLIENT: DealReason.CLIENT,
    DEAL_REASON_MOBILE: DealReason.CLIENT,
    DEAL_REASON_WEB: DealReason.CLIENT,
    DEAL_REASON_EXPERT: DealReason.EXPERT,
    DEAL_REASON_SL: DealReason.SL,
    DEAL_REASON_TP: DealReason.TP,
    DEAL_REASON_SO: DealReason.SO,
}
_DEAL_ENTRIES = {
    DEAL_ENTRY_IN: "in",
    DEAL_ENTRY_OUT: "out",
    DEAL_ENTRY_INOUT: "inout",
    DEAL_ENTRY_OUT_BY: "out_by",
}
_DEAL_SIDES = {DEAL_TYPE_BUY: Side.BUY, DEAL_TYPE_SELL: Side.SELL}


def position_side(position_type: int) -> Side:
    """ENUM_POSITION_TYPE → ``Side``. Raises ValueError for any other value."""
    if position_type == POSITION_TYPE_BUY:
        return Side.BUY
    if position_type == POSITION_TYPE_SELL:
        return Side.SELL
    raise ValueError(f"position type {position_type} is neither buy nor sell")


def deal_side(deal_type: int) -> Side | None:
    """ENUM_DEAL_TYPE → ``Side`` for a trade; None for a balance operation."""
    return _DEAL_SIDES.get(deal_type)


def deal_entry(entry: int) -> str:
    """ENUM_DEAL_ENTRY → "in", "out", "inout" or "out_by" (an unknown value: "in")."""
    return _DEAL_ENTRIES.get(entry, "in")


def deal_reason(reason: int) -> DealReason:
    """ENUM_DEAL_REASON → ``DealReason``: desktop, mobile and web are all a person
    (CLIENT); rollover, variation margin, splits and unknown values are OTHER."""
    return _DEAL_REASONS.get(reason, DealReason.OTHER)
