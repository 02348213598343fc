"""A short-lived cache of symbols' specifications for position sizing.

Sizing needs a symbol's tick size, tick value and volume limits (MetaTrader 5: symbol_info)
on every request; asking the terminal each time costs a bridge round trip, behind a login
switch. The specification is the same for every account of one server with one deposit
currency (tick values are in the deposit currency), so it is cached per (server, symbol,
account currency) in the Django cache (Redis in production, shared by every process) for
``SYMBOL_SPEC_TTL_SECONDS``. One cache entry per (server, symbol) holds every currency's,
so :func:`symbol_spec_cache_invalidate` drops them all with one delete: a sync that sees a
symbol's specification change calls it.

Tick values move with the conversion rate of a deposit currency other than the profit
currency (EURUSD in a EUR account: 1 USD / EURUSD); within the TTL a sizing uses the value
of up to that many seconds ago.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from django.core.cache import cache

from brokers.gateway import BrokerGateway, SymbolSpec

SYMBOL_SPEC_TTL_SECONDS = 10.0


def _key(server: str, symbol: str) -> str:
    # quoted: a server name may hold spaces, which some cache backends refuse in keys
    return f"risk:symbol_spec:{quote(server, safe='')}:{quote(symbol, safe='')}"


def symbol_spec_cached(*, gateway: BrokerGateway, server: str, symbol: str,
                       currency: str) -> SymbolSpec:
    """``symbol``'s specification at ``server`` for an account in ``currency`` (ISO code):
    from the cache when read less than ``SYMBOL_SPEC_TTL_SECONDS`` ago, else from
    ``gateway`` (logged in as such an account), then cached. Raises what
    ``gateway.symbol_spec`` raises (``BrokerUnknownSymbol``, ``BrokerUnavailable``):
    a failure is never cached."""
    key = _key(server, symbol)
    entry: dict[str, tuple[float, SymbolSpec]] = cache.get(key) or {}
    now = time.time()
    cached = entry.get(currency)
    if cached is not None and now - cached[0] < SYMBOL_SPEC_TTL_SECONDS:
        return cached[1]
    spec = gateway.symbol_spec(symbol)
    # keep the other currencies' entries that are still fresh; a concurrent writer may drop
    # one of them (last write wins): that costs one more read, never a wrong figure
    fresh = {c: v for c, v in entry.items() if now - v[0] < SYMBOL_SPEC_TTL_SECONDS}
    cache.set(key, {**fresh, currency: (now, spec)}, timeout=int(SYMBOL_SPEC_TTL_SECONDS) + 1)
    return spec


def symbol_spec_cache_invalidate(server: str, symbol: str) -> None:
    """Forget ``symbol``'s cached specifications at ``server``, for every deposit currency.
    Call it when a sync sees the symbol's specification differ from the stored one
    (``positions.models.Instrument``)."""
    cache.delete(_key(server, symbol))
