"""The simulated terminal, the bridge and the bridge client hold calls to the real
``MetaTrader5`` module's signatures (brokers.mt5_signatures, taken from wheel 5.0.6231).

The real module answers a call outside its signature with None (False from login) and
last_error RES_E_INVALID_PARAMS; keyword dates to history_deals_get are the case that broke
deal reads against a real terminal while the simulator let them through."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers import mt5_api as mt5
from brokers.bridge.client import BridgeTerminal
from brokers.bridge.server import (
    ALLOWED_METHODS,
    SIM_METHODS,
    BadRequest,
    TerminalWorker,
    validate_call,
)
from brokers.errors import BridgeRefused
from brokers.gateway import Side
from brokers.mt5 import Mt5Gateway
from brokers.mt5_signatures import DOCSTRINGS, PARAM_TYPES, SIGNATURES, check_call
from brokers.sim import ReplayClock, SimAccount, SimTerminal, load_bars
from tests.conftest import SIM_SERVER, start_bridge

BARS = load_bars()
TOKEN = "signature-test-token-0123456789"
EVERYTHING = (0, 2**31 - 1)


def sim(login: int = 1001) -> Any:
    term = SimTerminal(bars=BARS, clock=ReplayClock(3600, manual=True), accounts=[SimAccount(
        login=login, password=f"pw-{login}", investor_password=f"view-{login}",
        server=SIM_SERVER, currency="USD", leverage=100, balance=Decimal(10000),
        name="Signatures")])
    assert term.initialize()
    assert term.login(login, password=f"pw-{login}", server=SIM_SERVER)
    return term


# ------------------------------------------------------------------------- the table


def test_the_table_agrees_with_the_recorded_docstrings():
    """Every name a form uses is in the function's docstring from the wheel, except the
    keywords the binary and the docs add (timeout, portable)."""
    for name, forms in SIGNATURES.items():
        doc = DOCSTRINGS[name]
        words = set(re.findall(r"[a-z_]+", doc))
        for form in forms:
            for param in (*form.positional, *form.keywords):
                assert param in words or param in ("timeout", "portable"), (name, param)
                assert param in PARAM_TYPES, (name, param)


@pytest.mark.parametrize(("method", "args", "kwargs", "message"), [
    # docstring: history_deals_get([date_from, date_to, [group="GROUP"]],[position=],[ticket=])
    ("history_deals_get", (), {"date_from": 0, "date_to": 10}, "Invalid number of arguments"),
    ("history_deals_get", (), {}, "Invalid number of arguments"),
    ("history_deals_get", (0,), {}, "Invalid number of arguments"),
    ("history_deals_get", (0, 10), {"ticket": 5}, "Invalid arguments"),
    ("history_deals_get", (0, "tomorrow"), {}, 'Invalid "date_to" argument'),
    ("history_orders_get", (), {"date_from": 0, "date_to": 10}, "Invalid number of arguments"),
    ("positions_get", ("EURUSD",), {}, "Unnamed arguments not allowed"),
    ("positions_get", (), {"ticket": "7"}, 'Invalid "ticket" argument'),
    ("symbol_info", (), {"symbol": "EURUSD"}, "Invalid number of arguments"),
    ("order_send", (), {"request": {}}, "Invalid number of arguments"),
    ("order_calc_margin", (0, "EURUSD", 0.1), {}, "Invalid number of arguments"),
    ("copy_rates_from_pos", ("EURUSD", 16385, 0), {"count": 2}, "Invalid number of arguments"),
    ("login", (), {"login": 1001, "password": "x"}, "Invalid number of arguments"),
    ("initialize", (), {"path": "C:/mt5"}, "Invalid arguments"),
    ("order_calc_margin", (0, "EURUSD", True, 1.1), {}, 'Invalid "volume" argument'),
])
def test_calls_the_real_module_refuses(method, args, kwargs, message):
    assert check_call(method, args, kwargs) == message


@pytest.mark.parametrize(("method", "args", "kwargs"), [
    ("history_deals_get", (0, 10), {}),
    ("history_deals_get", (datetime(2017, 1, 1, tzinfo=UTC), 10), {"group": "*USD*"}),
    ("history_deals_get", (), {"position": 7}),
    ("history_deals_get", (), {"ticket": 7}),
    ("positions_get", (), {}),
    ("positions_get", (), {"symbol": "EURUSD", "ticket": 7}),
    ("login", (1001,), {"password": "x", "server": "s", "timeout": 5000}),
    ("initialize", (), {}),
    ("initialize", ("C:/mt5/terminal64.exe",), {"login": 1, "portable": True}),
    ("order_calc_margin", (0, "EURUSD", 1, 1.1), {}),
])
def test_calls_the_real_module_takes(method, args, kwargs):
    assert check_call(method, args, kwargs) is None


# -------------------------------------------------------------- the simulated terminal


@pytest.mark.parametrize(("call", "failure"), [
    (lambda t: t.history_deals_get(date_from=0, date_to=2**31 - 1), None),
    (lambda t: t.history_deals_get(), None),
    (lambda t: t.positions_get("EURUSD"), None),
    (lambda t: t.symbol_info(symbol="EURUSD"), None),
    (lambda t: t.order_calc_margin(0, "EURUSD", 0.1, price=1.1), None),
    (lambda t: t.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_H1, start_pos=0, count=2), None),
    (lambda t: t.login(login=1001, password="pw-1001"), False),
    (lambda t: t.initialize(path="C:/mt5"), False),
])
def test_the_simulator_refuses_like_the_real_module(call, failure):
    term = sim()
    assert call(term) is failure
    assert term.last_error()[0] == mt5.RES_E_INVALID_PARAMS
    assert term.account_info().login == 1001  # nothing else happened


def test_the_simulator_serves_only_functions_the_table_knows():
    served = {name for name in dir(SimTerminal)
              if not name.startswith(("_", "sim_")) and not name.isupper()}
    assert served <= set(SIGNATURES)


# ------------------------------------------------------------------------- the bridge


def test_the_bridge_serves_the_real_signatures():
    for name, forms in ALLOWED_METHODS.items():
        if name != "initialize":  # the bridge's own verb: log in to the request's account
            assert forms == SIGNATURES[name], name
    with pytest.raises(BadRequest) as info:
        validate_call({"method": "history_deals_get",
                       "kwargs": {"date_from": 0, "date_to": 10}}, ALLOWED_METHODS)
    assert info.value.code == "bad_params"
    assert "history_deals_get([date_from, date_to" in info.value.message


def _wire_gateway(term: Any, sent: list[tuple[str, list, dict]]) -> Mt5Gateway:
    """A gateway whose BridgeTerminal posts to an in-process bridge: the bridge's own
    validate_call and worker, in front of ``term``; ``sent`` collects what passed."""
    worker = TerminalWorker(term, {**ALLOWED_METHODS, **SIM_METHODS})

    def handle(request: httpx.Request) -> httpx.Response:
        try:
            method, args, kwargs, account, _ = validate_call(json.loads(request.content),
                                                             worker.methods)
        except BadRequest as exc:
            return httpx.Response(exc.status, json={"code": exc.code, "message": exc.message})
        sent.append((method, args, kwargs))
        return httpx.Response(200, json=worker.call(method, args, kwargs, account))

    http = httpx.Client(transport=httpx.MockTransport(handle))
    terminal = BridgeTerminal("http://bridge.test", TOKEN, http=http)
    return Mt5Gateway(terminal, login=1001, password="pw-1001", server=SIM_SERVER, magic=7)


def test_every_call_the_adapter_makes_fits_the_real_signatures():
    """Walk every gateway method through BridgeTerminal: each call it puts on the wire is
    accepted by the bridge and fits the real module's table."""
    sent: list[tuple[str, list, dict]] = []
    gateway = _wire_gateway(sim(), sent)
    gateway.account_state()
    opened = gateway.open_position("EURUSD", Side.BUY, Decimal("0.20"), sl=None, tp=None,
                                   tag="sig")
    assert opened.done
    gateway.positions()
    gateway.quote("EURUSD")
    gateway.symbol_spec("EURUSD")
    gateway.margin_required("EURUSD", Side.BUY, Decimal("0.10"), Decimal("1.1"))
    gateway.recent_bars("EURUSD", 2)
    gateway.server_utc_offset_minutes(datetime(2017, 4, 19, 9, tzinfo=UTC))
    assert gateway.close_position(opened.ticket, None, "sig").done
    assert any(d.entry == "out" for d in gateway.deals(datetime(2017, 4, 19, tzinfo=UTC)))
    assert {m for m, _, _ in sent} == {
        "initialize", "account_info", "order_send", "positions_get", "symbol_info",
        "symbol_info_tick", "order_calc_margin", "copy_rates_from_pos", "history_deals_get"}
    for method, args, kwargs in sent:
        if method != "initialize":
            assert check_call(method, args, kwargs) is None, (method, args, kwargs)


def test_a_keyword_date_is_refused_by_a_real_bridge():
    bridge = start_bridge(TOKEN)
    try:
        bridge.add_account(4001)
        response = httpx.post(
            f"{bridge.url}/v1/call", headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10, content=json.dumps({
                "method": "history_deals_get", "kwargs": {"date_from": 0, "date_to": 2**31},
                "account": {"login": 4001, "password": "pw-4001", "server": SIM_SERVER}}))
        assert response.status_code == 400
        assert response.json()["code"] == "bad_params"
        terminal = BridgeTerminal(bridge.url, TOKEN, timeout=5)
        assert terminal.login(4001, password="pw-4001", server=SIM_SERVER)
        with pytest.raises(BridgeRefused):
            terminal.positions_get(ticket="1")  # type: ignore[arg-type]
        assert len(terminal.history_deals_get(*EVERYTHING)) == 1  # the initial deposit
    finally:
        bridge.process.terminate()
        bridge.process.wait(timeout=10)


def test_a_closing_deal_is_read_back_through_a_real_bridge():
    """Open in the sim, close through the gateway, then deals(since) over the bridge has
    the closing deal (its dates travel positionally)."""
    bridge = start_bridge(TOKEN)
    try:
        bridge.add_account(4002)
        ticket = bridge.sim("sim_open", 4002, "EURUSD", "buy", "0.10", magic=7)
        gateway = Mt5Gateway(BridgeTerminal(bridge.url, TOKEN, timeout=5), login=4002,
                             password="pw-4002", server=SIM_SERVER, magic=7)
        (position,) = gateway.positions()
        result = gateway.close_position(ticket, None, "guard:test")
        assert result.done
        deals = gateway.deals(since=position.opened_at)
        (out,) = [d for d in deals if d.entry == "out"]
        assert (out.ticket, out.position_id) == (result.deal, ticket)
    finally:
        bridge.process.terminate()
        bridge.process.wait(timeout=10)
