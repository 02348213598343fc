"""Writes on members and trading accounts: link, make primary, unlink, rotate keys."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status

from accounts import metrics
from accounts.crypto import credentials_encrypt, credentials_rotate
from accounts.gateways import ib_gateway_for, terminal_endpoint
from accounts.models import BaselineReset, Terminal, TradeServer, TradingAccount, User
from accounts.terminals import terminal_for_link
from brokers import open_gateway
from brokers.errors import (
    BridgeRefused,
    BrokerAccountMismatch,
    BrokerAuthError,
    BrokerBadReply,
    BrokerError,
    BrokerUnavailable,
)
from brokers.gateway import AccountState
from brokers.servertime import zone_for_offset
from config.errors import ApplicationError


class AccountLinkError(ApplicationError):
    code = "account_link_failed"
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


@transaction.atomic
def trading_account_create(*, user: User, broker: str, broker_name: str, server: str,
                           login: str, password: str | None, read_only: bool = False,
                           cadence_seconds: int | None = None,
                           state: AccountState | None = None,
                           terminal: Terminal | None = None) -> TradingAccount:
    """Store a linked account with its password encrypted (``password`` None: an account
    without credentials, such as IBKR's, whose IB Gateway holds the login; stored empty);
    due for sync at once.

    The member's first active account becomes primary (the member's rows are locked so two
    concurrent links cannot both become primary). ``state``, when given, is the verified
    read: it stamps ``verified_at`` and the first figures. ``terminal``: the one it was
    verified through (``accounts.terminals.terminal_for_link``); none: assigned by the
    dispatcher's ``terminals_rebalance`` when terminals are registered. Raises
    IntegrityError if the same (broker, server, login) is already linked.
    """
    mine = TradingAccount.objects.select_for_update().filter(user=user, is_active=True)
    has_primary = any(a.is_primary for a in mine)
    now = timezone.now()
    account = TradingAccount(
        user=user,
        broker=broker,
        broker_name=broker_name,
        server=server,
        login=str(login),
        is_primary=not has_primary,
        credentials_encrypted="" if password is None else credentials_encrypt(password=password),
        credentials_read_only=read_only,
        sync_cadence_seconds=cadence_seconds or settings.SYNC_DEFAULT_CADENCE_SECONDS,
        next_sync_at=now,
        terminal=terminal,
    )
    if state is not None:
        account.verified_at = now
        account.currency = state.currency
        account.leverage = state.leverage
    account.save()
    return account


def trade_server_register(*, name: str, gateway: Any = None) -> TradeServer:
    """The trade server ``name``, registered on first sight with its time zone detected
    through ``gateway`` (an ``Mt5Gateway`` logged in there): the last tick's time against
    UTC, rounded to 30 minutes (``brokers.servertime``). Without a live tick (a weekend, a
    replay) the zone is ``MT5_DEFAULT_SERVER_TIMEZONE`` and ``detection`` says so; the
    owner can change it in the admin. A server already registered is left as it is."""
    existing = TradeServer.objects.filter(name=name).first()
    if existing is not None:
        return existing
    now = timezone.now()
    offset = zone = None
    detect = getattr(gateway, "server_utc_offset_minutes", None)
    if detect is not None:
        try:
            offset = detect(now)
        except BrokerError:
            offset = None
    if offset is not None:
        zone = zone_for_offset(offset)
    if zone is not None:
        note = f"detected at link: last tick {offset:+d} min from UTC"
    else:
        zone = settings.MT5_DEFAULT_SERVER_TIMEZONE
        note = ("not detected (no live tick: market closed or a replay); default "
                f"{zone}" if offset is None else f"offset {offset:+d} min has no zone")
    server, _ = TradeServer.objects.get_or_create(name=name, defaults={
        "timezone": zone, "detected_offset_minutes": offset,
        "detected_at": now if offset is not None else None, "detection": note[:200]})
    return server


@transaction.atomic
def account_baseline_reset(*, account: TradingAccount, changed_by: User | None,
                           reason: str) -> BaselineReset:
    """Restart the account's high-water mark at its current equity (the owner, from the
    admin), audited with who, when, the old and the new peak. Raises ApplicationError 409
    ``no_figures`` before the first good read."""
    row = TradingAccount.objects.select_for_update().get(pk=account.pk)
    if row.equity is None:
        raise ApplicationError("The account has no figures yet: nothing to restart from.",
                               code="no_figures", status_code=status.HTTP_409_CONFLICT)
    now = timezone.now()
    audit = BaselineReset.objects.create(account=row, previous_peak=row.peak_equity,
                                         new_peak=row.equity, reason=reason[:200] or "reset",
                                         changed_by=changed_by, changed_at=now)
    TradingAccount.objects.filter(pk=row.pk).update(
        peak_equity=row.equity, drawdown_percent=Decimal(0), baseline_started_at=now,
        baseline_reset_requested=False)
    return audit


def _verify(*, login: str, password: str, server: str,
            terminal: Terminal | None = None) -> AccountState:
    """Log in through the gateway (on ``terminal``; none: ``MT5_BRIDGE_URL``) and read the
    account; register its trade server (and detect its time zone) on first sight. Raises
    AccountLinkError."""
    bridge_url, bridge_token = terminal_endpoint(terminal)
    gateway = open_gateway(
        broker=TradingAccount.Broker.MT5, login=login, password=password, server=server,
        bridge_url=bridge_url, bridge_token=bridge_token,
        timeout_seconds=settings.MT5_CONNECTION_TIMEOUT,
    )
    try:
        state = gateway.account_state()
        trade_server_register(name=server, gateway=gateway)
        return state
    except BrokerAuthError:
        raise AccountLinkError(
            "The broker refused the login: wrong password, unknown login or unknown server.",
            code="invalid_credentials",
        ) from None
    except BrokerAccountMismatch as exc:
        raise AccountLinkError(
            "The broker answered for another account than the login given.",
            code="mismatch", detail={"reported_login": exc.detail.get("reported_login")},
        ) from None
    except BrokerUnavailable as exc:
        raise ApplicationError(
            "The broker could not be reached in time; nothing was stored. Try again.",
            code="broker_unavailable", status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"reason": exc.code},
        ) from None
    except (BrokerBadReply, BridgeRefused) as exc:
        raise ApplicationError(
            "The broker connection is misconfigured or answered nonsense; nothing was stored.",
            code="broker_error", status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"reason": exc.code},
        ) from None


def account_link(*, user: User, login: int, password: str, server: str,
                 broker_name: str = "") -> TradingAccount:
    """Link an MT5 account to ``user``.

    With ``MT5_VERIFY_ON_LINK`` the gateway logs in first: a refused login is 422
    ``invalid_credentials``, an account other than ``login`` is 422 ``mismatch``, a timeout
    is 503 ``broker_unavailable``; in each case nothing is stored. Whether the password is
    the investor (read-only) one is read from the broker (``trade_allowed``). The same
    (broker, server, login) linked by anyone is 409 ``already_linked``, answered only after
    the credentials were verified (without ``MT5_VERIFY_ON_LINK`` nothing is verified, and
    the constraint answers 409 at once).
    """
    metrics.link_started_total.inc()
    started = time.perf_counter()

    def already_linked() -> ApplicationError:
        return ApplicationError("This broker account is already linked.",
                                code="already_linked", status_code=status.HTTP_409_CONFLICT)

    # No look-up before the broker has verified the credentials: a 409 to anyone would tell
    # a stranger which logins are on the platform. Only someone who proved the password
    # learns it (the unique constraint below decides); a wrong one is 422 either way.
    state = None
    read_only = False
    # sticky from the start: verified through the terminal that will read it
    terminal = terminal_for_link(broker=TradingAccount.Broker.MT5, server=server)
    if settings.MT5_VERIFY_ON_LINK:
        state = _verify(login=str(login), password=password, server=server,
                        terminal=terminal)
        read_only = not state.trade_allowed
        metrics.verified_total.inc()
    try:
        account = trading_account_create(
            user=user, broker=TradingAccount.Broker.MT5, broker_name=broker_name,
            server=server, login=str(login), password=password, read_only=read_only,
            state=state, terminal=terminal,
        )
    except IntegrityError:
        raise already_linked() from None
    metrics.link_duration.observe(time.perf_counter() - started)
    return account


IB_ACCOUNT_ID = re.compile(r"^D?U\d{4,12}$")


def _ib_gateway_resolve(*, account_id: str, gateway: str) -> Terminal:
    """The IB Gateway (``Terminal`` of kind ib_gateway, enabled) serving ``account_id``:
    the one named ``gateway``, or, unnamed, the only one whose ``servers`` lists the id
    (or is empty: any). Raises AccountLinkError ``unknown_gateway`` (none by that name, or
    none serving the id) or ``gateway_required`` (several could: name one)."""
    gateways = Terminal.objects.filter(kind=Terminal.Kind.IB_GATEWAY, enabled=True)
    if gateway:
        named = gateways.filter(name=gateway).first()
        if named is None:
            raise AccountLinkError(f"No IB Gateway named {gateway!r} is registered.",
                                   code="unknown_gateway", detail={"field": "gateway"})
        return named
    serving = [t for t in gateways.order_by("id") if not t.servers or account_id in t.servers]
    if not serving:
        raise AccountLinkError("No registered IB Gateway serves this account.",
                               code="unknown_gateway", detail={"field": "gateway"})
    listing = [t for t in serving if t.servers]
    if len(listing) == 1:  # the gateway that names the account wins over "any"
        return listing[0]
    if len(serving) > 1:
        raise AccountLinkError("Several IB Gateways could serve this account: name one.",
                               code="gateway_required", detail={"field": "gateway"})
    return serving[0]


def _ib_verify(*, account_id: str, terminal: Terminal) -> AccountState:
    """Read the account through IB Gateway ``terminal``: the id must be among the
    gateway's managed accounts (TWS API: managedAccounts). Raises AccountLinkError 422
    ``invalid_credentials`` (not managed there), ApplicationError 503
    ``broker_unavailable`` (the gateway does not answer in time) or ``broker_error`` (it
    answered nonsense). Stores nothing."""
    gateway = ib_gateway_for(account_id=account_id, terminal=terminal)
    try:
        return gateway.account_state()
    except BrokerAuthError:
        raise AccountLinkError(
            "This account id is not managed by that IB Gateway (it holds another login).",
            code="invalid_credentials") from None
    except BrokerUnavailable as exc:
        raise ApplicationError(
            "The IB Gateway could not be reached in time; nothing was stored. Try again.",
            code="broker_unavailable", status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"reason": exc.code}) from None
    except BrokerError as exc:
        raise ApplicationError(
            "The IB Gateway answered nonsense; nothing was stored.",
            code="broker_error", status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"reason": exc.code}) from None


def ibkr_account_link(*, user: User, account_id: str, gateway: str = "",
                      read_only: bool = False, broker_name: str = "") -> TradingAccount:
    """Link Interactive Brokers account ``account_id`` (``U1234567``, ``DU1234567``) to
    ``user``, served by the IB Gateway named ``gateway`` (a ``Terminal`` of kind
    ib_gateway; empty: the one registered for the id, ``_ib_gateway_resolve``).

    No password: IB Gateway holds the login. The id is always verified against the
    gateway's managed accounts: not managed there is 422 ``invalid_credentials``, the
    gateway down is 503 ``broker_unavailable``; an unknown gateway is 422
    ``unknown_gateway``. The account is stored with ``login`` and ``server`` both the id
    (as the adapter reports it, so a read keys its instruments by it) and assigned to that
    gateway; ``read_only``: watched, never closed. The same id linked by anyone is 409
    ``already_linked``, answered after the verification. Nothing is stored on failure."""
    metrics.link_started_total.inc()
    started = time.perf_counter()
    if not IB_ACCOUNT_ID.match(account_id):
        raise AccountLinkError("An IB account id looks like U1234567 or DU1234567.",
                               code="invalid_account_id", detail={"field": "account_id"})
    terminal = _ib_gateway_resolve(account_id=account_id, gateway=gateway)
    state = _ib_verify(account_id=account_id, terminal=terminal)
    metrics.verified_total.inc()
    try:
        account = trading_account_create(
            user=user, broker=TradingAccount.Broker.IBKR,
            broker_name=broker_name or "Interactive Brokers", server=account_id,
            login=account_id, password=None, read_only=read_only, state=state,
            terminal=terminal)
    except IntegrityError:
        raise ApplicationError("This broker account is already linked.",
                               code="already_linked",
                               status_code=status.HTTP_409_CONFLICT) from None
    metrics.link_duration.observe(time.perf_counter() - started)
    return account


@transaction.atomic
def account_primary_set(*, account: TradingAccount) -> TradingAccount:
    """Make ``account`` its member's only primary account.

    The old primary is cleared before the new one is set, in one transaction with the
    member's rows locked: the partial unique index allows one primary per member at every
    moment, and two concurrent calls queue on the lock instead of failing on the index.
    """
    if not account.is_active:
        raise ApplicationError("An unlinked account cannot be primary.", code="unlinked",
                               status_code=status.HTTP_409_CONFLICT)
    list(TradingAccount.objects.select_for_update().filter(user_id=account.user_id))
    TradingAccount.objects.filter(user_id=account.user_id, is_primary=True).exclude(
        pk=account.pk).update(is_primary=False)
    TradingAccount.objects.filter(pk=account.pk).update(is_primary=True)
    account.refresh_from_db()
    return account


@transaction.atomic
def account_unlink(*, account: TradingAccount) -> TradingAccount:
    """Unlink ``account``: it stops syncing, its credentials are erased, its history stays.

    The member's only account cannot be unlinked (409 ``last_account``). Unlinking the
    primary promotes the member's oldest other account.
    """
    others = list(
        TradingAccount.objects.select_for_update()
        .filter(user_id=account.user_id, is_active=True).exclude(pk=account.pk)
        .order_by("created_at", "pk")
    )
    if not others:
        raise ApplicationError("The only linked account cannot be unlinked.",
                               code="last_account", status_code=status.HTTP_409_CONFLICT)
    was_primary = account.is_primary
    account.is_active = False
    account.is_primary = False
    account.unlinked_at = timezone.now()
    account.credentials_encrypted = ""
    account.next_sync_at = None
    account.save(update_fields=["is_active", "is_primary", "unlinked_at",
                                "credentials_encrypted", "next_sync_at"])
    if was_primary:
        TradingAccount.objects.filter(pk=others[0].pk).update(is_primary=True)
    return account


def trading_account_credentials_rotate() -> int:
    """Re-encrypt every linked account's credentials under the newest key. Returns the count."""
    rotated = 0
    accounts = TradingAccount.objects.exclude(credentials_encrypted="").only(
        "id", "credentials_encrypted")
    for account in accounts.iterator():
        token = credentials_rotate(account.credentials_encrypted)
        if token != account.credentials_encrypted:
            TradingAccount.objects.filter(pk=account.pk).update(credentials_encrypted=token)
            rotated += 1
    return rotated


def device_key_create(*, account: TradingAccount, name: str,
                      created_by: User | None) -> tuple[Any, str]:
    """A new device key for ``account``; returns (key, secret). The secret is shown once."""
    import hashlib
    import secrets as _secrets

    from accounts.models import DeviceKey

    secret = _secrets.token_urlsafe(32)
    key = DeviceKey.objects.create(
        account=account, name=name, key_id=f"dk_{_secrets.token_hex(8)}",
        secret_encrypted=fernet_encrypt(secret),
        fingerprint=hashlib.sha256(secret.encode()).hexdigest(), created_by=created_by,
    )
    return key, secret


def device_key_revoke(*, key: Any) -> None:
    """Revoke a device key; its signatures are refused from now on. Idempotent."""
    from accounts.models import DeviceKey

    DeviceKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now())


def fernet_encrypt(text: str) -> str:
    from accounts.crypto import fernet

    return fernet().encrypt(text.encode()).decode()
