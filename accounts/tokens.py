"""Refresh tokens die with the password: a user's outstanding refresh tokens are
blacklisted when their password changes or they are deactivated (simplejwt's
``token_blacklist`` app), whichever code path saved the user: the admin, ``manage.py
changepassword``, ``set_password`` in a service. Access tokens carry a hash of the password
(``SIMPLE_JWT['CHECK_REVOKE_TOKEN']``), so they stop working at once too, and the
authentication refuses an inactive user."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User


def user_tokens_revoke(*, user: User) -> int:
    """Blacklist every outstanding refresh token of ``user`` not blacklisted yet. Returns
    how many. Two queries; safe to run twice (the blacklist is unique per token)."""
    tokens = list(OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
                  .values_list("pk", flat=True))
    now = timezone.now()
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token_id=pk, blacklisted_at=now) for pk in tokens],
        ignore_conflicts=True)
    return len(tokens)


def _remember_credentials(sender: type[User], instance: User, **kwargs: Any) -> None:
    """pre_save: note whether this save changes the password or deactivates the user."""
    instance._revoke_tokens = False  # type: ignore[attr-defined]
    if instance.pk is None or kwargs.get("raw"):
        return
    fields = kwargs.get("update_fields")
    if fields is not None and not {"password", "is_active"} & set(fields):
        return  # e.g. last_login at each sign-in: no query
    was = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if was is not None and (was["password"] != instance.password
                            or (was["is_active"] and not instance.is_active)):
        instance._revoke_tokens = True  # type: ignore[attr-defined]


def _revoke_after_save(sender: type[User], instance: User, **kwargs: Any) -> None:
    if getattr(instance, "_revoke_tokens", False):
        instance._revoke_tokens = False  # type: ignore[attr-defined]
        user_tokens_revoke(user=instance)
