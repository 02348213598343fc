"""The one place that turns a ``TradingAccount`` into a broker gateway."""

from __future__ import annotations

import threading

import httpx
from django.conf import settings

from accounts.crypto import credentials_decrypt
from accounts.models import TradingAccount
from brokers import open_gateway
from brokers.bridge.client import make_http_client
from brokers.gateway import BrokerGateway

_local = threading.local()


def _http() -> httpx.Client:
    # One pooled client per thread: keep-alive connections to the bridge across accounts.
    client = getattr(_local, "http", None)
    if client is None:
        client = _local.http = make_http_client(settings.MT5_CONNECTION_TIMEOUT)
    return client


def account_gateway(account: TradingAccount) -> BrokerGateway:
    """A gateway logged in as ``account`` (lazily). Raises CredentialsUnreadable."""
    credentials = credentials_decrypt(account.credentials_encrypted)
    return open_gateway(
        broker=account.broker,
        login=account.login,
        password=credentials["password"],
        server=account.server,
        bridge_url=settings.MT5_BRIDGE_URL,
        bridge_token=settings.MT5_BRIDGE_TOKEN,
        timeout_seconds=settings.MT5_CONNECTION_TIMEOUT,
        magic=settings.BOT_MAGIC,
        http=_http(),
    )
