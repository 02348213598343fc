"""Broker credentials are encrypted at rest, rotate to a new key, and never show."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.sites import site
from django.core import serializers

from accounts.crypto import (
    CredentialsUnreadable,
    credentials_decrypt,
    credentials_encrypt,
)
from accounts.models import TradingAccount
from accounts.services import trading_account_create, trading_account_credentials_rotate

pytestmark = pytest.mark.django_db


def link(user, login="4001", password="s3cret-master"):
    return trading_account_create(user=user, broker="mt5", broker_name="B", server="S",
                                  login=login, password=password)


def test_password_is_not_stored_in_clear(member):
    link(member)
    stored = TradingAccount.objects.values_list("credentials_encrypted", flat=True).get()
    assert "s3cret-master" not in stored
    assert credentials_decrypt(stored) == {"password": "s3cret-master"}


def test_first_account_is_primary_and_the_second_is_not(member):
    assert link(member, "4001").is_primary
    assert not link(member, "4002").is_primary


def test_rotation_re_encrypts_under_the_newest_key(member, settings):
    account = link(member)
    old_token = account.credentials_encrypted
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]

    assert trading_account_credentials_rotate() == 1

    account.refresh_from_db()
    assert account.credentials_encrypted != old_token
    # readable with the new key alone: the old key can now be retired
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert credentials_decrypt(account.credentials_encrypted)["password"] == "s3cret-master"


def test_a_token_under_an_unknown_key_is_unreadable(settings):
    token = credentials_encrypt(password="x")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CredentialsUnreadable):
        credentials_decrypt(token)


def test_admin_never_shows_credentials(member, admin_client):
    account = link(member)
    model_admin = site._registry[TradingAccount]
    assert "credentials_encrypted" not in str(model_admin.fieldsets)
    page = admin_client.get(f"/admin/accounts/tradingaccount/{account.pk}/change/")
    assert page.status_code == 200
    assert account.credentials_encrypted not in page.content.decode()
    assert "s3cret-master" not in page.content.decode()


def test_serialising_an_account_does_not_leak_the_password(member):
    link(member)
    dumped = serializers.serialize("json", TradingAccount.objects.all())
    assert "s3cret-master" not in dumped
