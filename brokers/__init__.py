"""Broker gateways: the port (``brokers.gateway``) and its adapters. No Django here.

Apps obtain a gateway from ``open_gateway`` and speak only the dataclasses of
``brokers.gateway``; they never import an adapter module themselves.
"""

from __future__ import annotations

from typing import Any

from brokers.gateway import BrokerGateway


def open_gateway(*, broker: str, login: str | int, password: str, server: str,
                 bridge_url: str, bridge_token: str, timeout_seconds: float,
                 magic: int = 0, http: Any = None,
                 server_timezone: str = "UTC", host: str = "", port: int = 0,
                 client_id: int = 0) -> BrokerGateway:
    """A gateway for one account. ``broker`` is "mt5" or "ibkr".

    "ibkr": ``login`` is the IB account id (``DU1234567``), served by the IB Gateway at
    ``host``:``port`` as API client ``client_id`` (``brokers.ibkr.IbkrGateway``); the
    password, server and bridge arguments are not used (IB Gateway holds the login).

    ``server_timezone`` is the trade server's IANA time zone: MetaTrader 5 reports position,
    deal and tick times in the server's wall-clock time, and the adapter converts them to UTC.

    On Linux the mt5 adapter drives a ``BridgeTerminal`` bound to ``bridge_url``.
    Raises ``ValueError`` for a broker without an adapter.
    """
    if broker == "ibkr":
        from brokers.ibkr import IbkrGateway

        return IbkrGateway(host=host, port=port, client_id=client_id, account_id=str(login),
                           timeout_seconds=timeout_seconds)
    if broker != "mt5":
        raise ValueError(f"no gateway adapter for broker {broker!r}")
    from brokers.bridge.client import BridgeTerminal
    from brokers.mt5 import Mt5Gateway

    terminal = BridgeTerminal(bridge_url, bridge_token, timeout=timeout_seconds, http=http)
    return Mt5Gateway(terminal, login=int(login), password=password, server=server,
                      timeout_ms=int(timeout_seconds * 1000), magic=magic,
                      server_timezone=server_timezone)
