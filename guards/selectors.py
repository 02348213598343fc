"""Reads behind the guard API: each account's guard state as the member sees it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from accounts.models import TradingAccount
from guards.models import AccountGuardState, CloseRequest, GuardAlert, LiquidationEpisode
from guards.services.configuration import effective_settings
from guards.services.episodes import ACTIVE_EPISODE


def guards_overview(accounts: list[TradingAccount]) -> list[dict[str, Any]]:
    """Per account: level, drawdown, thresholds, last check, recent alerts and closes."""
    ids = [a.pk for a in accounts]
    eff = effective_settings(ids)
    states = {s.account_id: s for s in AccountGuardState.objects.filter(account_id__in=ids)}
    alerts = list(GuardAlert.objects.filter(account_id__in=ids).order_by("-created_at")[:200])
    closes = list(CloseRequest.objects.filter(account_id__in=ids).order_by("-created_at")[:200])
    episodes = {e.account_id: e for e in LiquidationEpisode.objects.filter(
        account_id__in=ids, status__in=ACTIVE_EPISODE)}
    rows = []
    for account in accounts:
        state = states.get(account.pk)
        episode = episodes.get(account.pk)
        rows.append({
            "account_id": account.pk, "login": account.login,
            "level": state.level if state else "ok",
            # decimal strings, like every other figure of the API
            "drawdown_percent": _text(account.drawdown_percent),
            "equity": _text(account.equity), "peak_equity": _text(account.peak_equity),
            # the high-water mark counts from here (linking, a liquidation, the owner)
            "baseline_started_at": account.baseline_started_at,
            "cash_flow_total": _text(account.cash_flow_total),
            "currency": account.currency,
            "thresholds": {
                "alert_percent": str(eff[account.pk].thresholds.alert_percent),
                "max_percent": str(eff[account.pk].thresholds.max_percent),
                "min_equity": str(eff[account.pk].thresholds.min_equity)},
            "trading_blocked": bool(state and state.trading_blocked),
            "last_check": state.checked_at if state else None,
            "read_only": account.credentials_read_only,
            "liquidation": None if episode is None else {
                "status": episode.status, "reason": episode.reason,
                "recheck_at": episode.recheck_at},
            "alerts": [{"kind": a.kind, "message": a.message, "created_at": a.created_at}
                       for a in alerts if a.account_id == account.pk][:20],
            "close_requests": [
                {"ticket": c.ticket, "reason": c.reason, "status": c.status,
                 "close_price": _text(c.close_price), "realized_pnl": _text(c.realized_pnl),
                 "created_at": c.created_at}
                for c in closes if c.account_id == account.pk][:20],
        })
    return rows


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
