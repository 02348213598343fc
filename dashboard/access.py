"""Who sees the risk dashboard: the one place the rule lives.

The admin's own login already keeps out anyone who is not staff; the dashboard also needs
the owner role, so a member who was made staff (support) still never sees it.
"""

from __future__ import annotations

from typing import Any


def dashboard_visible_to(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if not user.is_active:
        return False
    if not user.is_staff:
        return False
    return bool(getattr(user, "is_owner", False))
