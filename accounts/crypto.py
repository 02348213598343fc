"""Broker credentials, encrypted at rest with Fernet (``cryptography``), with key rotation.

``FIELD_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys, newest first: new
tokens use the first key; any listed key decrypts. ``credentials_rotate`` re-encrypts a
token under the newest key (MultiFernet.rotate). Plain credentials never leave this module
except to a gateway.
"""

from __future__ import annotations

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CredentialsUnreadable(Exception):
    """The stored token cannot be decrypted with any configured key."""

    code = "credentials_unreadable"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS holds a bad Fernet key: {exc}") from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def credentials_encrypt(*, password: str) -> str:
    """A Fernet token (text) holding the broker password."""
    return fernet().encrypt(json.dumps({"password": password}).encode()).decode()


def credentials_decrypt(token: str) -> dict[str, str]:
    """The stored credentials as a dict. Raises CredentialsUnreadable."""
    try:
        data = json.loads(fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise CredentialsUnreadable("stored broker credentials cannot be decrypted") from None
    return data


def credentials_rotate(token: str) -> str:
    """The same credentials, encrypted under the newest key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("stored broker credentials cannot be decrypted") from None


def secret_decrypt(token: str) -> str:
    """A secret stored with ``fernet().encrypt`` (device keys). Raises CredentialsUnreadable."""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("stored secret cannot be decrypted") from None
