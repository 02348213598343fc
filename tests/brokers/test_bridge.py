"""The terminal bridge as a real process: token, whitelist, bad input, timeouts, and login
switches that never let one account's call read another account."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from brokers import mt5_api
from brokers.bridge.client import BridgeTerminal
from brokers.bridge.server import ALLOWED_METHODS, BadRequest, validate_call
from brokers.errors import BridgeRefused, BrokerTimeout
from brokers.mt5 import Mt5Gateway
from tests.conftest import SIM_SERVER, start_bridge

TOKEN = "bridge-test-token-0123456789"


@pytest.fixture(scope="module")
def bridge():
    bridge = start_bridge(TOKEN)
    for login in (6001, 6002):
        bridge.add_account(login, currency="USD" if login == 6001 else "GBP")
    yield bridge
    bridge.process.terminate()
    bridge.process.wait(timeout=10)


def post(bridge, body, token=TOKEN, raw: bytes | None = None) -> httpx.Response:
    return httpx.post(f"{bridge.url}/v1/call", headers={"Authorization": f"Bearer {token}"},
                      content=raw if raw is not None else json.dumps(body), timeout=10)


def test_wrong_token_is_refused(bridge):
    response = post(bridge, {"method": "version"}, token="wrong-token-wrong-token")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    terminal = BridgeTerminal(bridge.url, "wrong-token-wrong-token", timeout=5)
    with pytest.raises(BridgeRefused):
        terminal.account_info()


def test_missing_token_is_refused(bridge):
    response = httpx.post(f"{bridge.url}/v1/call", content=b"{}", timeout=10)
    assert response.status_code == 401


@pytest.mark.parametrize("method", ["eval", "__class__", "sim_inject_faultx", "order_check",
                                    "_books", "shutdown"])
def test_methods_outside_the_whitelist_are_refused(bridge, method):
    response = post(bridge, {"method": method})
    assert response.status_code == 400
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(("raw", "code"), [
    (b"{not json", "malformed_json"),
    (b'{"method": "symbol_info", "args": [NaN]}', "malformed_json"),
    (b'{"method": "symbol_info", "args": [Infinity]}', "malformed_json"),
    (b"[1, 2]", "bad_request"),
    (b'{"method": "symbol_info", "args": [{"__class__": 1}]}', "bad_params"),
    (b'{"method": "positions_get", "kwargs": {"evil": 1}}', "bad_params"),
    (b'{"method": "symbol_info", "args": ["EURUSD", "x"]}', "bad_params"),
    (b'{"method": "account_info", "account": {"login": -5, "password": "", "server": "s"}}',
     "bad_params"),
    (b'{"method": "account_info", "timeout": 1000}', "bad_params"),
    (b'{"method": "order_send", "args": [{"action": 1, "exec": "x"}]}', "bad_params"),
])
def test_bad_input_gets_a_clear_code(bridge, raw, code):
    response = post(bridge, None, raw=raw)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_oversized_body_is_refused(bridge):
    response = post(bridge, None, raw=b'{"method": "version", "pad": "' + b"x" * 1_100_000 + b'"}')
    assert response.status_code == 413


def test_validate_call_takes_only_scalars():
    with pytest.raises(BadRequest) as info:
        validate_call({"method": "symbol_info", "args": [["EURUSD"]]}, ALLOWED_METHODS)
    assert info.value.code == "bad_params"


def test_bad_input_changes_nothing(bridge):
    before = bridge.sim("sim_positions", 6001)
    post(bridge, None, raw=b'{"method": "order_send", "args": [{"volume": NaN}]}')
    post(bridge, None, raw=b'{"method": "order_send", "args": [{"action": 1, "volume": -1}]}',
         token="wrong-token-wrong-token")
    assert bridge.sim("sim_positions", 6001) == before


def test_negative_volume_order_is_refused_by_the_terminal(bridge):
    terminal = bridge.admin()
    assert terminal.login(6001, password="pw-6001", server=SIM_SERVER)
    result = terminal.order_send({
        "action": mt5_api.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": -1.0,
        "type": mt5_api.ORDER_TYPE_BUY, "price": 1.1, "deviation": 10,
        "type_filling": mt5_api.ORDER_FILLING_FOK, "type_time": mt5_api.ORDER_TIME_GTC,
    })
    assert result is None or result.retcode != mt5_api.TRADE_RETCODE_DONE
    assert bridge.sim("sim_positions", 6001) == ()


def test_timeout_reads_as_unknown(bridge):
    bridge.sim("sim_inject_fault", "timeout", method="account_info", delay=3)
    terminal = BridgeTerminal(bridge.url, TOKEN, timeout=1)
    gateway = Mt5Gateway(terminal, login=6001, password="pw-6001", server=SIM_SERVER)
    with pytest.raises(BrokerTimeout):
        gateway.account_state()


def test_login_switches_are_serialised(bridge):
    """Two accounts read at once through one terminal: each only ever sees itself."""
    seen: dict[int, set[int]] = {6001: set(), 6002: set()}
    errors: list[Exception] = []

    def reader(login: int):
        terminal = BridgeTerminal(bridge.url, TOKEN, timeout=10)
        gateway = Mt5Gateway(terminal, login=login, password=f"pw-{login}", server=SIM_SERVER)
        try:
            for _ in range(25):
                state = gateway.account_state()
                seen[login].add(state.login)
                gateway.positions()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(login,)) for login in (6001, 6002) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert seen == {6001: {6001}, 6002: {6002}}


def test_health_says_nothing_about_the_terminal(bridge):
    response = httpx.get(f"{bridge.url}/healthz", timeout=5)
    assert response.json() == {"ok": True}
