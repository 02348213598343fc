"""A client of the terminal bridge that looks like the ``MetaTrader5`` module.

``BridgeTerminal`` has the module's methods and constants, so the mt5 adapter drives it
exactly as it would drive the real package on Windows, with the real signatures
(``brokers.mt5_signatures``: dates and symbols positional, filters as keywords), which
the bridge enforces. It is bound to one account: every
call carries that account's credentials, and the bridge logs the terminal in to it (if it
was on another account) in the same job as the call.

Like the real module, a read that fails returns ``None`` and ``last_error()`` tells why; a
transport timeout reads as ``RES_E_INTERNAL_FAIL_TIMEOUT``, a refused connection as
``RES_E_INTERNAL_FAIL_CONNECT``. A refusal by the bridge itself (wrong token, a method or
argument it does not serve) is a configuration fault, not a market fact: it raises
``BridgeRefused``. A reply that is not the bridge's JSON raises ``BrokerBadReply``.
"""

from __future__ import annotations

import json
import math
import os
import ssl
from collections import namedtuple
from datetime import datetime
from functools import lru_cache
from typing import Any

import httpx

from brokers import mt5_api
from brokers.errors import BridgeRefused, BrokerBadReply


@lru_cache(maxsize=64)
def _namedtuple_type(name: str, fields: tuple[str, ...]) -> type:
    # Built from the reply's own field list: the adapter, not the transport, decides
    # which fields are required, so a reply missing one fails there with its name.
    return namedtuple(name, fields)  # type: ignore[misc]


def decode(value: Any) -> Any:
    """Inverse of the bridge's ``encode``: tagged objects back to namedtuples, lists to tuples."""
    if isinstance(value, dict):
        if "__nt__" in value:
            name, fields = value.get("__nt__"), value.get("fields")
            if not isinstance(name, str) or not isinstance(fields, dict):
                raise BrokerBadReply("bridge sent a malformed record")
            cls = _namedtuple_type(name, tuple(fields))
            return cls(*(decode(v) for v in fields.values()))
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    return value


def _reject_constant(name: str) -> Any:
    raise BrokerBadReply(f"bridge sent {name}, which is not a number")


def make_http_client(timeout: float) -> httpx.Client:
    """A pooled HTTP client for bridge calls; the bridge gets a little less time than we
    wait, so that it is the bridge that answers "timeout" and drops the queued job.

    An ``https://`` bridge is verified against the system's CAs, or against
    ``MT5_BRIDGE_CA_FILE`` (a PEM bundle) for a bridge with a private CA's certificate."""
    ca_file = os.environ.get("MT5_BRIDGE_CA_FILE", "")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file \
        else True
    return httpx.Client(timeout=httpx.Timeout(timeout + 2.0, connect=min(timeout, 5.0)),
                        verify=verify)


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp())  # the MetaTrader5 module takes epoch seconds too
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinity cannot be sent to a terminal")
    return value


class BridgeTerminal:
    """``MetaTrader5``-module look-alike speaking to one bridge (one terminal).

    ``timeout`` is in seconds and bounds each call end to end (queueing at the terminal
    included). Thread-safe as far as httpx.Client is.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 10.0,
                 http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        # One httpx.Client (a connection pool) may be shared by many accounts' terminals.
        self._http = http or make_http_client(timeout)
        self._account: dict[str, Any] | None = None
        self._last_error: tuple[int, str] = (mt5_api.RES_S_OK, "Success")

    def __getattr__(self, name: str) -> Any:
        if name.isupper() and hasattr(mt5_api, name):
            return getattr(mt5_api, name)
        raise AttributeError(name)

    # --- transport ---
    def _call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        body = {
            "method": method,
            "args": [_wire(a) for a in args],
            "kwargs": {k: _wire(v) for k, v in kwargs.items() if v is not None},
            "account": self._account,
            "timeout": self.timeout,
        }
        try:
            response = self._http.post(
                f"{self.url}/v1/call",
                content=json.dumps(body, allow_nan=False),
                headers={"Authorization": f"Bearer {self._token}",
                         "Content-Type": "application/json"},
            )
        except httpx.TimeoutException:
            self._last_error = (mt5_api.RES_E_INTERNAL_FAIL_TIMEOUT, "bridge timeout")
            return None
        except httpx.TransportError as exc:
            self._last_error = (mt5_api.RES_E_INTERNAL_FAIL_CONNECT, f"bridge unreachable: {exc}")
            return None
        try:
            payload = json.loads(response.content, parse_constant=_reject_constant)
        except ValueError:
            raise BrokerBadReply(
                f"bridge answered HTTP {response.status_code} without JSON"
            ) from None
        if not isinstance(payload, dict):
            raise BrokerBadReply("bridge answered JSON that is not an object")
        if response.status_code == 504:
            self._last_error = (mt5_api.RES_E_INTERNAL_FAIL_TIMEOUT, payload.get("message", ""))
            return None
        if response.status_code != 200:
            raise BridgeRefused(
                f"bridge refused {method}: {payload.get('code')} {payload.get('message')}",
                detail={"status": response.status_code, "code": payload.get("code")},
            )
        error = payload.get("last_error")
        if (
            not isinstance(error, list)
            or len(error) != 2
            or not isinstance(error[0], int)
        ):
            raise BrokerBadReply("bridge reply has no last_error")
        self._last_error = (error[0], str(error[1]))
        return decode(payload.get("result"))

    # --- the MetaTrader5 module's API (positional-only and keyword-only as the real one) ---
    def initialize(self, path: str | None = None, /, **kwargs: Any) -> bool:
        if kwargs.get("login") is not None:
            return self.login(kwargs["login"], password=kwargs.get("password", ""),
                              server=kwargs.get("server", ""))
        return bool(self._call("initialize"))

    def login(self, login: int, /, password: str = "", server: str = "",
              timeout: int | None = None) -> bool:
        self._account = {"login": int(login), "password": password, "server": server}
        ok = self._call("initialize")
        if not ok:
            self._account = None
        return bool(ok)

    def shutdown(self) -> None:
        self._account = None

    def last_error(self) -> tuple[int, str]:
        return self._last_error

    def version(self) -> Any:
        return self._call("version")

    def terminal_info(self) -> Any:
        return self._call("terminal_info")

    def account_info(self) -> Any:
        return self._call("account_info")

    def positions_total(self) -> Any:
        return self._call("positions_total")

    def positions_get(self, *, symbol: str | None = None, group: str | None = None,
                      ticket: int | None = None) -> Any:
        return self._call("positions_get", symbol=symbol, group=group, ticket=ticket)

    def history_deals_get(self, date_from: Any = None, date_to: Any = None, /, *,
                          group: str | None = None, ticket: int | None = None,
                          position: int | None = None) -> Any:
        """(date_from, date_to[, group=]) or (ticket=) or (position=); the dates travel
        positionally, as the real module takes them."""
        dates = [d for d in (date_from, date_to) if d is not None]
        return self._call("history_deals_get", *dates, group=group, ticket=ticket,
                          position=position)

    def symbol_info(self, symbol: str, /) -> Any:
        return self._call("symbol_info", symbol)

    def symbol_info_tick(self, symbol: str, /) -> Any:
        return self._call("symbol_info_tick", symbol)

    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float,
                          /) -> Any:
        return self._call("order_calc_margin", action, symbol, volume, price)

    def copy_rates_from_pos(self, symbol: str, timeframe: int, start_pos: int, count: int,
                            /) -> Any:
        return self._call("copy_rates_from_pos", symbol, timeframe, start_pos, count)

    def order_send(self, request: dict[str, Any], /) -> Any:
        return self._call("order_send", {k: _wire(v) for k, v in request.items()})

    # --- the simulated terminal's extra calls (served only by a --sim bridge) ---
    def sim(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call a ``sim_*`` method, for tests and the demo; raises BridgeRefused otherwise."""
        if not name.startswith("sim_"):
            raise ValueError("only sim_* methods go through sim()")
        return self._call(name, *args, **kwargs)
