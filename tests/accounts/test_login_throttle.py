"""Sign-in is throttled (issue 16): per username and per address on the API, before the
password hash; django-axes locks the admin's sign-in out."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
TOKEN = "/api/v1/auth/token"


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    # a cache of this process only: the shared Redis test database is flushed by other
    # test runs at any moment, which would reset the throttles' counts mid-test
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "sign-in-tests"}}
    cache.clear()
    yield
    cache.clear()


def attempt(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(TOKEN, {"username": username, "password": password}, format="json",
                       REMOTE_ADDR=ip)


def test_wrong_passwords_for_one_username_are_throttled_even_the_right_one(member):
    client = APIClient()
    for n in range(5):  # LOGIN_RATE_PER_USERNAME 5/min
        assert attempt(client, "member", f"guess-{n}", ip=f"10.0.0.{n}").status_code == 401
    refused = attempt(client, "Member", "pw-member-1", ip="10.0.1.1")  # any case, any address
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "throttled" and set(body) == {"code", "message", "detail"}
    assert int(refused["Retry-After"]) > 0
    # another member is not held back by it
    assert attempt(client, "someone-else", "x", ip="10.0.2.1").status_code == 401


def test_one_address_is_throttled_across_usernames(member):
    client = APIClient()
    for n in range(20):  # LOGIN_RATE_PER_IP 20/min
        assert attempt(client, f"user-{n}", "x").status_code == 401
    assert attempt(client, "member", "pw-member-1").status_code == 429
    assert attempt(client, "member", "pw-member-1", ip="10.9.9.9").status_code == 200


def test_a_throttled_attempt_never_hashes_a_password(member, django_assert_num_queries,
                                                     monkeypatch):
    client = APIClient()
    for n in range(5):
        attempt(client, "member", f"guess-{n}")
    hashed = []
    from django.contrib.auth import hashers

    real = hashers.check_password
    monkeypatch.setattr(hashers, "check_password",
                        lambda *a, **k: hashed.append(1) or real(*a, **k))
    from accounts.models import User

    monkeypatch.setattr(User, "check_password",
                        lambda self, raw: hashed.append(1) or False)
    with django_assert_num_queries(0):
        assert attempt(client, "member", "pw-member-1").status_code == 429
    assert hashed == []


def test_the_refresh_and_telegram_sign_in_are_throttled_per_address():
    client = APIClient()
    for _ in range(20):
        client.post("/api/v1/auth/token/refresh", {"refresh": "x"}, format="json")
    assert client.post("/api/v1/auth/telegram", {"init_data": "x"},
                       format="json").status_code == 429


def test_the_admin_locks_out_after_repeated_wrong_passwords(client, owner):
    answers = [client.post("/admin/login/", {"username": "owner", "password": f"no-{n}"})
               .status_code for n in range(5)]  # AXES_FAILURE_LIMIT
    assert answers == [200, 200, 200, 200, 429]  # the form again, then locked out
    locked = client.post("/admin/login/", {"username": "owner", "password": "pw-owner-1"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_admin_still_signs_in_with_the_right_password(client, owner):
    response = client.post("/admin/login/", {"username": "owner", "password": "pw-owner-1"})
    assert response.status_code == 302
