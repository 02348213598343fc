"""``{% risk_dashboard as dash %}``: the owner's dashboard for the admin index, or None."""

from __future__ import annotations

from typing import Any

from django import template

from dashboard.access import dashboard_visible_to
from dashboard.selectors import RiskDashboard, risk_dashboard

register = template.Library()


@register.simple_tag(takes_context=True, name="risk_dashboard")
def risk_dashboard_tag(context: dict[str, Any]) -> RiskDashboard | None:
    request = context.get("request")
    if request is None or not dashboard_visible_to(request.user):
        return None
    return risk_dashboard()


@register.filter
def age(seconds: int | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``; ``-`` for none."""
    if seconds is None:
        return "-"
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 else "")
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@register.filter
def money(value: Any) -> str:
    """``1,234,567.89``; a sign only when negative (the currency is written beside it)."""
    if value is None:
        return "-"
    return f"{value:,.2f}"


@register.filter
def signed(value: Any) -> str:
    """``+12.30`` / ``−4.10`` / ``0.00``: P&L shows its sign."""
    if value is None:
        return "-"
    if value > 0:
        return f"+{value:,.2f}"
    if value < 0:
        return f"−{-value:,.2f}"
    return f"{value:,.2f}"
