"""The IB Gateway stand-in as a real process, registered as a ``Terminal`` of kind
ib_gateway, for the Django-level IBKR tests (linking, sync, guards)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from accounts.models import Terminal
from tests.brokers.conftest import EUR_ACCOUNT, USD_ACCOUNT, IbGatewayProcess, start_ib_gateway

__all__ = ["EUR_ACCOUNT", "USD_ACCOUNT", "IbStandIn", "closed_port", "ib_stand_in"]


@dataclass
class IbStandIn:
    """A running stand-in (DU1234567 in USD with 100,000; DU7654321 in EUR with 50,000)
    and its Terminal row ``ib-1``."""

    process: IbGatewayProcess
    terminal: Terminal

    def admin(self, op: str, **params: Any) -> Any:
        return self.process.admin(op, **params)

    def holdings(self, account: str) -> list[str]:
        """The symbols of the account's non-zero positions at the stand-in (admin ``state``)."""
        positions = self.admin("state")["accounts"][account]["positions"]
        return [symbol for symbol, p in positions.items() if float(p["quantity"]) != 0]


def closed_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ib_stand_in(request, db) -> Iterator[IbStandIn]:
    """The stand-in process (extra command-line arguments: the fixture's indirect
    ``param``, a tuple) and its Terminal; every ibkr session of this process is closed
    afterwards."""
    from brokers.ibkr import close_sessions

    process = start_ib_gateway(*getattr(request, "param", ()))
    terminal = Terminal.objects.create(name="ib-1", kind=Terminal.Kind.IB_GATEWAY,
                                       host=process.host, port=process.port, client_id=100)
    try:
        yield IbStandIn(process, terminal)
    finally:
        close_sessions()
        process.stop()
