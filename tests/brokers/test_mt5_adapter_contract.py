"""The mt5 adapter turns a terminal's replies into dataclasses, or a clear error.

These drive the adapter with a hand-made terminal (the real one is outside this machine),
to feed it replies the simulated terminal never gives: missing fields, NaN, a negative
volume, an answer for another account.
"""

from __future__ import annotations

from collections import namedtuple
from decimal import Decimal

import pytest

from brokers import mt5_api
from brokers.errors import BrokerAuthError, BrokerBadReply, BrokerTimeout, BrokerUnavailable
from brokers.gateway import Side
from brokers.mt5 import Mt5Gateway

ACCOUNT = dict(
    login=1001, trade_mode=0, leverage=100, limit_orders=200, margin_so_mode=0,
    trade_allowed=True, trade_expert=True, margin_mode=2, currency_digits=2, fifo_close=False,
    balance=10000.0, credit=0.0, profit=81.0, equity=10081.0, margin=1072.19,
    margin_free=9008.81, margin_level=940.2344, margin_so_call=100.0, margin_so_so=50.0,
    margin_initial=0.0, margin_maintenance=0.0, assets=0.0, liabilities=0.0,
    commission_blocked=0.0, name="Test", server="Sim-Demo", currency="USD", company="Sim",
)
POSITION = dict(
    ticket=7, time=1492592400, time_msc=1492592400000, time_update=1492592400,
    time_update_msc=1492592400000, type=mt5_api.POSITION_TYPE_BUY, magic=20240101,
    identifier=7, reason=3, volume=1.0, price_open=1.07219, sl=0.0, tp=1.08, price_current=1.073,
    swap=0.0, profit=81.0, symbol="EURUSD", comment="bot:1", external_id="",
)


class StubTerminal:
    """Answers what the test sets. Stands in for a remote terminal."""

    def __init__(self, **replies):
        self.replies = replies
        self.error = (mt5_api.RES_S_OK, "Success")
        self.login_ok = True

    def login(self, login, password="", server="", timeout=None):
        if not self.login_ok:
            self.error = (mt5_api.RES_E_AUTH_FAILED, "Authorization failed")
        return self.login_ok

    def last_error(self):
        return self.error

    def _reply(self, name):
        value = self.replies.get(name)
        if isinstance(value, tuple) and len(value) == 2 and value[0] is None:
            self.error = value[1]
            return None
        return value

    def account_info(self):
        return self._reply("account_info")

    def positions_get(self, **_):
        return self._reply("positions_get")


def gateway(terminal) -> Mt5Gateway:
    return Mt5Gateway(terminal, login=1001, password="secret", server="Sim-Demo")


def test_account_state_is_decimal_and_rounded_to_currency_digits():
    state = gateway(StubTerminal(account_info=mt5_api.AccountInfo(**ACCOUNT))).account_state()
    assert state.equity == Decimal("10081.00")
    assert state.margin_level == Decimal("940.23")
    assert state.currency == "USD"


def test_account_state_of_a_flat_account_has_no_margin_level():
    info = mt5_api.AccountInfo(**{**ACCOUNT, "margin": 0.0, "margin_level": 0.0})
    assert gateway(StubTerminal(account_info=info)).account_state().margin_level is None


def test_empty_tuple_means_no_positions():
    assert gateway(StubTerminal(positions_get=())).positions() == []


def test_positions_convert_sides_and_zero_stops():
    position = gateway(
        StubTerminal(positions_get=(mt5_api.TradePosition(**POSITION),))
    ).positions()[0]
    assert position.side is Side.BUY
    assert position.sl is None  # MetaTrader 5 reports "no stop" as 0.0
    assert position.tp == Decimal("1.08")
    assert position.price_open == Decimal("1.07219")


@pytest.mark.parametrize(("code", "error"), [
    (mt5_api.RES_E_INTERNAL_FAIL_TIMEOUT, BrokerTimeout),
    (mt5_api.RES_E_INTERNAL_FAIL_CONNECT, BrokerUnavailable),
    (mt5_api.RES_E_INTERNAL_FAIL, BrokerUnavailable),
])
def test_none_is_unknown_never_flat(code, error):
    terminal = StubTerminal(positions_get=(None, (code, "failed")))
    with pytest.raises(error):
        gateway(terminal).positions()


def test_refused_login_is_an_auth_error():
    terminal = StubTerminal()
    terminal.login_ok = False
    with pytest.raises(BrokerAuthError):
        gateway(terminal).account_state()


@pytest.mark.parametrize(("change", "field"), [
    ({"volume": -1.0}, "volume"),
    ({"volume": 0.0}, "volume"),
    ({"price_open": float("nan")}, "price_open"),
    ({"profit": float("inf")}, "profit"),
    ({"type": 5}, "type"),
    ({"ticket": "7"}, "ticket"),
    ({"volume": True}, "volume"),
])
def test_bad_position_fields_are_named(change, field):
    terminal = StubTerminal(positions_get=(mt5_api.TradePosition(**{**POSITION, **change}),))
    with pytest.raises(BrokerBadReply) as info:
        gateway(terminal).positions()
    assert info.value.detail["field"] == field


def test_missing_field_is_named():
    partial = {k: v for k, v in POSITION.items() if k != "price_current"}
    short = namedtuple("TradePosition", list(partial))
    with pytest.raises(BrokerBadReply, match="price_current"):
        gateway(StubTerminal(positions_get=(short(**partial),))).positions()


def test_duplicate_tickets_are_refused():
    row = mt5_api.TradePosition(**POSITION)
    with pytest.raises(BrokerBadReply, match="twice"):
        gateway(StubTerminal(positions_get=(row, row))).positions()


def test_an_answer_for_another_account_is_refused():
    info = mt5_api.AccountInfo(**{**ACCOUNT, "login": 2002})
    with pytest.raises(BrokerBadReply, match="2002"):
        gateway(StubTerminal(account_info=info)).account_state()


def test_gateway_repr_hides_the_password():
    assert "secret" not in repr(gateway(StubTerminal()))
