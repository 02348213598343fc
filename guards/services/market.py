"""The market guard: price gaps, spreads and thin liquidity on the symbols held."""


from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import TradingAccount
from brokers.errors import BrokerError
from guards import levels
from guards.models import (
    Action,
    CloseRequest,
    GuardAlert,
)
from guards.services.alerts import guard_alerts_save
from guards.services.closes import close_request_open, closes_enqueue
from guards.services.configuration import guard_settings_get
from positions.models import Position

logger = logging.getLogger(__name__)


def market_guard_scan(*, now: datetime | None = None) -> int:
    """Per (server, symbol) held in open positions: the price gap of the bar in progress
    against the previous close, the spread, and thin liquidity where the broker reports it.
    Each flag is alerted once per account and bar; with ``market_action`` "close" the
    positions on that symbol are marked for close with the reason. A market that cannot be
    read gives no flag and no action. Returns the number of flags raised."""
    from django.core.cache import cache

    from accounts.crypto import CredentialsUnreadable
    from accounts.gateways import account_gateway

    now = now or timezone.now()
    base = guard_settings_get()
    limits = levels.MarketLimits(gap_percent=base.price_gap_alert_percent,
                                 spread_max_percent=base.bid_ask_spread_max_percent,
                                 min_liquidity_lots=base.min_liquidity_volume_lots)
    markets: dict[tuple[str, str], list[Position]] = {}
    for position in Position.objects.filter(
            status=Position.Status.OPEN, account__is_active=True,
            account__sync_status=TradingAccount.SyncStatus.HEALTHY).select_related("account"):
        markets.setdefault((position.account.server, position.symbol), []).append(position)
    raised = 0
    to_close: list[int] = []
    for (server, symbol), held in markets.items():
        try:
            gateway = account_gateway(held[0].account)
            quote = gateway.quote(symbol)
            bars = gateway.recent_bars(symbol, 2)
        except (BrokerError, CredentialsUnreadable) as exc:
            logger.info("market guard: %s %s unreadable: %s", server, symbol, exc)
            continue
        previous_close, open_price = ((bars[-2].close, bars[-1].open) if len(bars) >= 2
                                      else (None, None))
        bar_stamp = int((bars[-1].time if bars else quote.time).timestamp())
        by_account: dict[int, list[Position]] = {}
        for position in held:
            by_account.setdefault(position.account_id, []).append(position)
        for account_id, positions in by_account.items():
            flags = levels.market_flags(
                previous_close=previous_close, open_price=open_price, bid=quote.bid,
                ask=quote.ask, offered_volume=None,
                position_volume=sum((p.volume for p in positions), Decimal(0)), limits=limits)
            for flag in flags:
                key = f"market:{flag.kind}:{bar_stamp}"
                if not cache.add(f"guard:{key}:{account_id}:{symbol}", 1, timeout=7200):
                    continue  # already raised for this bar
                raised += 1
                with transaction.atomic():
                    guard_alerts_save([GuardAlert(
                        account_id=account_id, kind=GuardAlert.Kind.MARKET,
                        message=f"{symbol}: {flag.detail}"[:500], created_at=now,
                        payload={"symbol": symbol, "kind": flag.kind, "value": str(flag.value),
                                 "limit": str(flag.limit), "action": base.market_action})])
                    if base.market_action == Action.CLOSE:
                        for position in positions:
                            if position.account.credentials_read_only:
                                continue
                            request = close_request_open(
                                account=position.account, ticket=position.ticket,
                                symbol=symbol, key=key, reason=CloseRequest.Reason.MARKET,
                                detail=flag.detail)
                            to_close.append(request.pk)
    if to_close:
        transaction.on_commit(lambda: closes_enqueue(to_close))
    return raised
