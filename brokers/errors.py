"""Errors a broker gateway raises. Each has a stable ``code`` for APIs, logs and metrics."""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every gateway error. ``code`` is stable; ``message`` is for people."""

    code = "broker_error"

    def __init__(self, message: str, *, detail: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}


class BrokerUnavailable(BrokerError):
    """The broker could not be read (timeout, disconnect, ``None`` reply).

    The account's state is *unknown*: keep what was stored, never treat it as flat.
    """

    code = "broker_unavailable"


class BrokerTimeout(BrokerUnavailable):
    code = "broker_timeout"


class BrokerAuthError(BrokerError):
    """Login refused: wrong password, unknown server or account. Retrying will not help."""

    code = "broker_auth_failed"


class BrokerBadReply(BrokerError):
    """The broker (or the bridge) answered something that breaks the contract:
    a missing field, a NaN, a negative volume. Nothing is stored from such a reply."""

    code = "broker_bad_reply"


class BrokerUnknownSymbol(BrokerError):
    """The broker does not offer this symbol (MetaTrader 5: symbol_info is None, not found)."""

    code = "unknown_symbol"


class BrokerAccountMismatch(BrokerBadReply):
    """The terminal answered for another account than the one asked for."""

    code = "account_mismatch"


class BridgeRefused(BrokerError):
    """The terminal bridge refused the request (bad token, unknown method, bad params)."""

    code = "bridge_refused"
