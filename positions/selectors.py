"""Reads behind the positions API: an account's live picture, its P&L summary and its
equity series. Money is in the account's currency; prices in the quote currency."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import Mod, RowNumber

from accounts.models import TradingAccount
from accounts.selectors import SyncView, account_sync_view  # noqa: F401 - re-exported
from positions import pnl
from positions.models import EquitySnapshot, Position

PERCENT_BASES = {
    "pnl_percent": "entry notional: (current − entry) / entry × 100, signed for the side",
    "total_pnl_percent": "balance",
    "drawdown_percent": "peak equity (high-water mark)",
    "margin_level": "equity / margin × 100",
}


def position_pnl_percent(position: Position) -> Decimal | None:
    """P&L as percent of the entry notional, in the quote currency, for the side."""
    move = position.price_current - position.price_open
    if position.side == Position.Side.SELL:
        move = -move
    return pnl.pnl_percent(pnl=move, entry_notional=position.price_open)


def account_open_positions(account: TradingAccount) -> list[Position]:
    """Open positions, newest first: one query however many there are."""
    return list(
        Position.objects.filter(account=account, status=Position.Status.OPEN)
        .order_by("-opened_at", "-ticket")
    )


def account_positions_view(account: TradingAccount) -> dict[str, Any]:
    """The seeds' positions payload for one account (see PERCENT_BASES for the %)."""
    positions = account_open_positions(account)
    total_pnl = sum((p.profit + p.swap for p in positions), Decimal("0.00"))
    balance = account.balance
    return {
        "account": account,
        "positions": positions,
        "total_pnl": total_pnl,
        "total_pnl_percent": (pnl.pnl_percent(pnl=total_pnl, entry_notional=balance)
                              if balance else None),
        "sync": account_sync_view(account),
    }


def account_summary(account: TradingAccount, *, since: datetime | None,
                    until: datetime | None) -> dict[str, Any]:
    """Realized P&L, win rate and best/worst trade over positions closed in [since, until),
    and the open P&L now. Win rate counts closed positions with a known realized P&L."""
    closed = Position.objects.filter(account=account, status=Position.Status.CLOSED,
                                     realized_pnl__isnull=False)
    if since:
        closed = closed.filter(closed_at__gte=since)
    if until:
        closed = closed.filter(closed_at__lt=until)
    totals = closed.aggregate(
        realized=Sum("realized_pnl"), trades=Count("id"),
        wins=Count("id", filter=Q(realized_pnl__gt=0)),
        losses=Count("id", filter=Q(realized_pnl__lt=0)),
    )
    best = closed.order_by("-realized_pnl", "closed_at").first() if totals["trades"] else None
    worst = closed.order_by("realized_pnl", "closed_at").first() if totals["trades"] else None
    open_totals = Position.objects.filter(account=account, status=Position.Status.OPEN).aggregate(
        profit=Sum("profit"), swap=Sum("swap"), count=Count("id"))
    trades = totals["trades"]
    return {
        "account_id": account.pk,
        "currency": account.currency,
        "since": since,
        "until": until,
        "realized_pnl": totals["realized"] or Decimal("0.00"),
        "closed_trades": trades,
        "wins": totals["wins"],
        "losses": totals["losses"],
        "win_rate_percent": (pnl.pnl_percent(pnl=Decimal(totals["wins"]),
                                             entry_notional=Decimal(trades))
                             if trades else None),
        "best_trade": best,
        "worst_trade": worst,
        "open_pnl": (open_totals["profit"] or Decimal(0)) + (open_totals["swap"] or Decimal(0)),
        "open_positions": open_totals["count"],
    }


def account_equity_series(account: TradingAccount, *, since: datetime | None,
                          until: datetime | None, points: int) -> list[dict[str, Any]]:
    """Equity and balance over time, oldest first, at most ``points`` rows.

    Over ``points`` snapshots, every k-th is kept (k = ceil(n / points)), counted by the
    database with a window function, so a year of 10 s snapshots never reaches Python.
    """
    rows = EquitySnapshot.objects.filter(account=account)
    if since:
        rows = rows.filter(taken_at__gte=since)
    if until:
        rows = rows.filter(taken_at__lt=until)
    fields = ("taken_at", "equity", "balance", "margin_level", "drawdown_percent")
    total = rows.count()
    if total <= points:
        return list(rows.order_by("taken_at").values(*fields))
    step = -(-total // points)
    thinned = (
        rows.annotate(n=Window(RowNumber(), order_by=F("taken_at").asc()))
        .annotate(keep=Mod(F("n") - 1, step))
        .filter(keep=0)
        .order_by("taken_at")
        .values(*fields)
    )
    return list(thinned[:points])
