"""Refresh tokens are revocable (issue 16): they rotate (a used one is refused), and a
password change or a deactivation revokes every token of the user."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.tokens import user_tokens_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    # a cache of this process only: the shared Redis test database is flushed by other
    # test runs at any moment, which would reset the throttles' counts mid-test
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "sign-in-tests"}}
    cache.clear()
    yield
    cache.clear()


def sign_in(client, username="member", password="pw-member-1") -> dict:
    response = client.post("/api/v1/auth/token", {"username": username, "password": password},
                           format="json")
    assert response.status_code == 200
    return response.json()


def refresh(client, token: str):
    return client.post("/api/v1/auth/token/refresh", {"refresh": token}, format="json")


def accounts(client, access: str):
    return client.get("/api/v1/accounts", HTTP_AUTHORIZATION=f"Bearer {access}")


def test_a_refresh_token_works_once(member):
    client = APIClient()
    tokens = sign_in(client)
    first = refresh(client, tokens["refresh"])
    assert first.status_code == 200 and first.json()["refresh"] != tokens["refresh"]
    reused = refresh(client, tokens["refresh"])
    assert reused.status_code == 401
    assert refresh(client, first.json()["refresh"]).status_code == 200


def test_a_password_change_revokes_refresh_and_access_tokens(member):
    client = APIClient()
    tokens = sign_in(client)
    assert accounts(client, tokens["access"]).status_code == 200
    member.set_password("a-new-password-9")
    member.save()
    assert refresh(client, tokens["refresh"]).status_code == 401
    assert accounts(client, tokens["access"]).status_code == 401
    fresh = sign_in(client, password="a-new-password-9")
    assert accounts(client, fresh["access"]).status_code == 200


def test_deactivation_revokes_tokens(member):
    client = APIClient()
    tokens = sign_in(client)
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert refresh(client, tokens["refresh"]).status_code == 401
    assert accounts(client, tokens["access"]).status_code == 401


def test_an_unrelated_save_keeps_tokens(member, django_assert_num_queries):
    client = APIClient()
    tokens = sign_in(client)
    member.first_name = "Ann"
    member.save()
    with django_assert_num_queries(1):  # the UPDATE only: no look-up, no revocation
        member.save(update_fields=["first_name"])
    assert refresh(client, tokens["refresh"]).status_code == 200


def test_revoke_is_idempotent(member):
    client = APIClient()
    sign_in(client)
    sign_in(client)
    assert user_tokens_revoke(user=member) == 2
    assert user_tokens_revoke(user=member) == 0


def test_a_refresh_token_of_a_deleted_user_is_401_not_500(django_user_model):
    user = django_user_model.objects.create_user(username="gone", password="pw-gone-123")
    client = APIClient()
    tokens = sign_in(client, "gone", "pw-gone-123")
    user.delete()
    response = refresh(client, tokens["refresh"])
    assert response.status_code == 401
