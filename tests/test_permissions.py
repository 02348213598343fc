"""config.permissions.IsOwner: the owner-only views answer exactly as before it moved to
config (status, code and message), members keep what they may read, anonymous is 401."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from config.permissions import IsOwner
from config.service_auth import ServicePrincipal

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("method", "path", "body", "code", "message"), [
    ("put", "/api/v1/guards/platform", {"state": "halted"}, "forbidden",
     "Only the owner may set the platform state."),
    ("post", "/api/v1/risk/config", {"fixed_risk_percent": "5"}, "forbidden",
     "Only the owner may change the risk configuration."),
    ("get", "/api/v1/risk/config/history", None, "permission_denied",
     "Only the owner may do this."),
])
def test_a_member_is_refused_with_the_endpoints_own_answer(api, method, path, body, code,
                                                          message):
    response = getattr(api, method)(path, body, format="json")
    assert response.status_code == 403
    assert response.json() == {"code": code, "message": message, "detail": {}}


def test_a_member_still_reads_what_only_the_owner_changes(api):
    assert api.get("/api/v1/guards/platform").status_code == 200
    assert api.get("/api/v1/risk/config").status_code == 200


def test_the_owner_gets_through(owner_api):
    assert owner_api.put("/api/v1/guards/platform", {"state": "reducing"},
                         format="json").status_code == 200
    assert owner_api.get("/api/v1/risk/config/history").status_code == 200


def test_anonymous_is_401_before_the_owner_check(anon_api):
    assert anon_api.put("/api/v1/guards/platform", {"state": "halted"},
                        format="json").status_code == 401
    assert anon_api.get("/api/v1/risk/config/history").status_code == 401


@pytest.mark.parametrize(("user", "allowed"), [
    (SimpleNamespace(is_owner=True), True),
    (SimpleNamespace(is_owner=False), False),
    (ServicePrincipal(), False),  # the execution service has no owner powers
    (SimpleNamespace(), False),  # AnonymousUser has no is_owner at all
])
def test_only_is_owner_passes(user, allowed):
    request = SimpleNamespace(user=user, method="GET")
    assert IsOwner().has_permission(request, view=SimpleNamespace()) is allowed


def test_owner_only_methods_leave_the_other_methods_open():
    view = SimpleNamespace(owner_only_methods=frozenset({"PUT"}))
    member = SimpleNamespace(is_owner=False)
    assert IsOwner().has_permission(SimpleNamespace(user=member, method="GET"), view) is True
    assert IsOwner().has_permission(SimpleNamespace(user=member, method="PUT"), view) is False
