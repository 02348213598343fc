"""Telegram initData sign-in, with vectors built by the documented algorithm (Telegram docs:
"Validating data received via the Mini App"), computed here independently of the code."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import quote, urlencode

import pytest

from accounts.models import User
from notifications.initdata import InitDataError, validate

BOT_TOKEN = "123456:TEST-bot-token-for-unit-tests"
USER = {"id": 777000111, "first_name": "Ada", "last_name": "L", "username": "ada",
        "language_code": "en"}


def build(fields: dict[str, str], *, token: str = BOT_TOKEN) -> str:
    """initData as Telegram sends it: URL-encoded fields plus hash."""
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def fields(**changes) -> dict[str, str]:
    base = {"query_id": "AAHdF6IQAAAAAN0XohDhrOrc", "user": json.dumps(USER),
            "auth_date": str(int(time.time()) - 60)}
    return {**base, **changes}


def test_a_correct_vector_gives_its_user():
    user = validate(build(fields()), bot_token=BOT_TOKEN, max_age_seconds=86400)
    assert (user.id, user.first_name, user.username) == (777000111, "Ada", "ada")


@pytest.mark.parametrize(("init_data", "code"), [
    # a field changed after signing
    (build(fields()).replace("Ada", "Eve"), "bad_hash"),
    # signed with another bot's token
    (build(fields(), token="999:another-bot"), "bad_hash"),
    # older than a day
    (build(fields(auth_date=str(int(time.time()) - 86401))), "expired"),
    # no hash at all
    (urlencode(fields()), "missing_hash"),
    # a duplicated key: a second, unsigned value for user
    (build(fields()) + "&user=%7B%22id%22%3A1%7D", "malformed"),
    ("", "malformed"),
    ("not a query string", "malformed"),
    (build(fields(user="not json")), "no_user"),
])
def test_bad_vectors_are_refused_with_their_code(init_data, code):
    with pytest.raises(InitDataError) as info:
        validate(init_data, bot_token=BOT_TOKEN, max_age_seconds=86400)
    assert info.value.code == code


@pytest.mark.django_db
def test_the_exchange_gives_a_jwt_pair_and_creates_a_member(client, settings):
    settings.TELEGRAM_BOT_TOKEN = BOT_TOKEN
    response = client.post("/api/v1/auth/telegram", {"init_data": build(fields())},
                           content_type="application/json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["created"] is True and body["access"] and body["refresh"]
    member = User.objects.get(telegram_id=777000111)
    assert member.role == "member" and not member.has_usable_password()
    accounts = client.get("/api/v1/accounts", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert accounts.status_code == 200
    again = client.post("/api/v1/auth/telegram", {"init_data": build(fields())},
                        content_type="application/json").json()
    assert again["created"] is False and User.objects.filter(telegram_id=777000111).count() == 1


@pytest.mark.django_db
def test_tampered_initdata_is_401_and_creates_nothing(client, settings):
    settings.TELEGRAM_BOT_TOKEN = BOT_TOKEN
    response = client.post("/api/v1/auth/telegram",
                           {"init_data": build(fields()).replace("Ada", "Eve")},
                           content_type="application/json")
    assert response.status_code == 401 and response.json()["code"] == "bad_hash"
    assert not User.objects.filter(telegram_id=777000111).exists()


@pytest.mark.django_db
def test_unknown_users_can_be_refused_by_setting(client, settings):
    settings.TELEGRAM_BOT_TOKEN = BOT_TOKEN
    settings.TELEGRAM_AUTO_CREATE_MEMBERS = False
    response = client.post("/api/v1/auth/telegram", {"init_data": build(fields())},
                           content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "not_a_member"
    assert not User.objects.filter(telegram_id=777000111).exists()
