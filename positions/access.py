"""Which positions a user may see and close: the one place these rules live.

- Positions are seen through their account: whoever may read the account
  (``accounts.access.account_readable``: the member, and the owner) sees its positions; the
  primary account's positions are the member's own (``accounts.access.primary_account_of``).
- Only the member whose active account holds a position may close it by hand; the owner
  closes through the guards and the kill switch, not through a member's position.
- Anything else answers 404, exactly like a missing id.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from positions.models import Position


def positions_closable_by(user: User) -> QuerySet[Position]:
    """Positions (any status) on ``user``'s own active accounts, their account joined."""
    return Position.objects.select_related("account").filter(account__user=user,
                                                             account__is_active=True)


def position_closable(user: User, position_id: int) -> Position:
    """One position ``user`` may close by hand, with its account. Raises Http404
    otherwise."""
    position = positions_closable_by(user).filter(pk=position_id).first()
    if position is None:
        raise Http404
    return position
