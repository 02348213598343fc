"""The one place that turns a ``TradingAccount`` into a broker gateway."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

import httpx
from django.conf import settings
from django.utils import timezone

from accounts.crypto import credentials_decrypt
from accounts.models import Terminal, TradeServer, TradingAccount
from brokers import mt5_api, open_gateway
from brokers.bridge.client import BridgeTerminal, make_http_client
from brokers.errors import BrokerUnavailable
from brokers.gateway import BrokerGateway, Quote

_local = threading.local()
_zones: dict[str, tuple[float, str]] = {}
ZONE_TTL_SECONDS = 30.0


def trade_server_zone(server: str) -> str:
    """The IANA time zone of trade server ``server`` (``TradeServer``; unregistered:
    ``MT5_DEFAULT_SERVER_TIMEZONE``), cached per process for 30 s so a sync batch does not
    ask the database once per account, and an owner's change reaches every worker soon."""
    now = time.monotonic()
    cached = _zones.get(server)
    if cached is not None and now - cached[0] < ZONE_TTL_SECONDS:
        return cached[1]
    zone = TradeServer.objects.filter(name=server).values_list("timezone", flat=True).first()
    zone = zone or settings.MT5_DEFAULT_SERVER_TIMEZONE
    _zones[server] = (now, zone)
    return zone


def _http() -> httpx.Client:
    # One pooled client per thread: keep-alive connections to the bridge across accounts.
    client = getattr(_local, "http", None)
    if client is None:
        client = _local.http = make_http_client(settings.MT5_CONNECTION_TIMEOUT)
    return client


def terminal_endpoint(terminal: Terminal | None) -> tuple[str, str]:
    """(bridge URL, bearer token) of ``terminal``: its ``url`` and the token in the
    environment variable its ``token_env`` names (empty name: ``MT5_BRIDGE_TOKEN``); None:
    the default ``MT5_BRIDGE_URL`` / ``MT5_BRIDGE_TOKEN``. A variable that is not set gives
    an empty token, which the bridge refuses (``bridge_refused``: the terminal fails its
    calls and the fleet moves its accounts), never another terminal's token."""
    if terminal is None:
        return settings.MT5_BRIDGE_URL, settings.MT5_BRIDGE_TOKEN
    if not terminal.token_env:
        return terminal.url, settings.MT5_BRIDGE_TOKEN
    return terminal.url, os.environ.get(terminal.token_env, "")


def ib_client_id(terminal: Terminal) -> int:
    """The TWS API clientId this process uses on IB Gateway ``terminal``: its ``client_id``
    (default 0) + ``IB_CLIENT_ID_OFFSET`` (one per machine) + this process's id.

    IB Gateway refuses a second connection with a clientId already connected (error 326),
    and every process (each web and Celery worker process) keeps its own connection, so each
    needs its own id: process ids are unique on one machine, the offset tells machines apart.
    A clientId is a 32-bit integer; IB Gateway accepts at most 32 API connections at once."""
    return (terminal.client_id or 0) + settings.IB_CLIENT_ID_OFFSET + os.getpid()


class _Unassigned:
    """The gateway of an account with no IB Gateway assigned: every call is unavailable
    ("unknown", never flat), so the read is stale and retried until
    ``accounts.terminals.terminals_rebalance`` gives it one."""

    def __init__(self, account: TradingAccount) -> None:
        self.account_id = account.login

    def __getattr__(self, name: str) -> Any:
        def unavailable(*_: Any, **__: Any) -> Any:
            raise BrokerUnavailable(f"{name}: account {self.account_id} has no IB Gateway "
                                    "(Terminal) assigned", detail={"call": name})
        return unavailable


def ib_gateway_for(*, account_id: str, terminal: Terminal) -> BrokerGateway:
    """A gateway for IB account ``account_id`` (``U…``/``DU…``) behind IB Gateway
    ``terminal`` (kind ib_gateway: ``host``, ``port``; clientId from ``ib_client_id``).
    No password: IB Gateway holds the login. Never touches the network."""
    return open_gateway(
        broker=TradingAccount.Broker.IBKR, login=account_id, password="",
        server=account_id, bridge_url="", bridge_token="",
        timeout_seconds=settings.MT5_CONNECTION_TIMEOUT,
        host=terminal.host, port=terminal.port or 0, client_id=ib_client_id(terminal),
    )


def account_gateway(account: TradingAccount) -> BrokerGateway:
    """A gateway logged in as ``account`` (lazily), through its terminal
    (``TradingAccount.terminal``; none: ``MT5_BRIDGE_URL``). An IBKR account has no
    credentials: it is read through its IB Gateway (``ib_gateway_for``; none assigned:
    every call raises BrokerUnavailable). Raises CredentialsUnreadable (MetaTrader 5)."""
    if account.broker == TradingAccount.Broker.IBKR:
        if account.terminal is None:
            return cast(BrokerGateway, _Unassigned(account))
        return ib_gateway_for(account_id=account.login, terminal=account.terminal)
    credentials = credentials_decrypt(account.credentials_encrypted)
    bridge_url, bridge_token = terminal_endpoint(account.terminal)
    return open_gateway(
        broker=account.broker,
        login=account.login,
        password=credentials["password"],
        server=account.server,
        bridge_url=bridge_url,
        bridge_token=bridge_token,
        timeout_seconds=settings.MT5_CONNECTION_TIMEOUT,
        magic=settings.BOT_MAGIC,
        http=_http(),
        server_timezone=trade_server_zone(account.server),
    )


_unknown_symbols: dict[tuple[str, str], float] = {}
UNKNOWN_SYMBOL_TTL_SECONDS = 60.0


def terminal_quotes(terminal: Terminal | None, symbols: Iterable[str], *,
                    timeout_seconds: float) -> dict[str, Quote]:
    """The latest bid and ask (MetaTrader 5: symbol_info_tick, in the quote currency) of
    each of ``symbols`` the terminal offers, by symbol; ``time`` is when it was read (UTC).

    No login: ``symbol_info_tick`` is not about one account, so the bridge answers it
    from whichever account the terminal holds, queued between other jobs without
    switching login; it takes no terminal lease. A symbol the terminal does not offer is
    left out (and not asked again for ``UNKNOWN_SYMBOL_TTL_SECONDS``); a tick without a
    positive bid or with ask below bid is left out. Raises BrokerUnavailable when the
    terminal does not answer."""
    url, token = terminal_endpoint(terminal)
    bridge = BridgeTerminal(url, token, timeout=timeout_seconds, http=_http())
    quotes: dict[str, Quote] = {}
    now = time.monotonic()
    for symbol in sorted(symbols):
        if now - _unknown_symbols.get((url, symbol), -UNKNOWN_SYMBOL_TTL_SECONDS) \
                < UNKNOWN_SYMBOL_TTL_SECONDS:
            continue
        tick = bridge.symbol_info_tick(symbol)
        if tick is None:
            code, message = bridge.last_error()
            if code == mt5_api.RES_E_NOT_FOUND:
                _unknown_symbols[(url, symbol)] = now
                continue
            raise BrokerUnavailable(f"symbol_info_tick({symbol}) failed ({code}): {message}")
        bid, ask = Decimal(str(tick.bid)), Decimal(str(tick.ask))
        if bid > 0 and ask >= bid:
            quotes[symbol] = Quote(symbol=symbol, bid=bid, ask=ask, time=timezone.now())
    return quotes
