"""DRF permission classes shared by the apps: the one home of the owner-only rule."""

from __future__ import annotations

from rest_framework import permissions
from rest_framework.request import Request


class IsOwner(permissions.BasePermission):
    """Only the owner (``User.Role.OWNER``, ``user.is_owner``) gets through; a member, the
    execution service or anyone else is refused with 403.

    A view narrows the rule with ``owner_only_methods`` (e.g. ``{"PUT"}``: members may
    still read) and words the refusal with ``owner_only_message`` and
    ``owner_only_code``; the answer is ``{"code": "forbidden", "message": "Only the owner
    may do this.", "detail": {}}`` by default. An anonymous request is refused earlier
    (401) by ``IsAuthenticated``, listed first.
    """

    message = "Only the owner may do this."
    code = "forbidden"

    def has_permission(self, request: Request, view: object) -> bool:
        methods = getattr(view, "owner_only_methods", None)
        if methods is not None and request.method not in methods:
            return True
        # DRF words the 403 from these two attributes of the permission that refused
        self.message = getattr(view, "owner_only_message", self.message)
        self.code = getattr(view, "owner_only_code", self.code)
        return bool(getattr(request.user, "is_owner", False))
