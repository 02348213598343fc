"""Account snapshots pushed by an Expert Advisor (EA) in the member's own terminal.

The contract (README, "EA push"): ``POST /api/v1/devices/sync`` with headers

- ``X-Device-Key``: the key id (``dk_…``),
- ``X-Timestamp``: Unix seconds when the EA signed,
- ``X-Nonce``: 16–64 characters, never reused,
- ``X-Signature``: hex HMAC-SHA256 with the device secret over
  ``"{timestamp}.{nonce}." + body`` (the raw body bytes),

and a JSON body in MetaTrader 5's field names (``time``, ``account{…}``, ``positions[…]``,
optional ``deals[…]``). The signature is checked on the raw bytes before anything is
parsed; an old timestamp (over ``DEVICE_SYNC_MAX_AGE_SECONDS``), a reused nonce, a bad
signature or a revoked key is 401 and nothing is stored. A valid snapshot goes through the
same sync service as a pulled one (``sync_results_apply``, then reconciliation).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers, status

from accounts.crypto import CredentialsUnreadable, secret_decrypt
from accounts.models import DeviceKey, TradingAccount, User
from brokers import mt5_api
from brokers.gateway import AccountState, BrokerPosition, Deal
from config.errors import ApplicationError
from config.events import alert_raise
from positions import metrics, plausibility
from positions.models import CashFlow, Instrument, SyncLog
from positions.services import AccountFetch, sync_lease_acquire, sync_lease_release
from positions.services import sync_results_apply as apply

MAX_POSITIONS = 1000
MAX_MONEY = Decimal("1e15")
MAX_PRICE = Decimal("1e9")


def _unauthorized(code: str, message: str) -> ApplicationError:
    return ApplicationError(message, code=code, status_code=status.HTTP_401_UNAUTHORIZED)


def device_request_verify(*, headers: Any, body: bytes, now: float | None = None) -> DeviceKey:
    """Check a push's key, timestamp, signature and nonce. Raises ApplicationError 401."""
    now = time.time() if now is None else now
    key_id = headers.get("X-Device-Key", "")
    stamp = headers.get("X-Timestamp", "")
    nonce = headers.get("X-Nonce", "")
    signature = headers.get("X-Signature", "")
    if not (key_id and stamp and nonce and signature):
        raise _unauthorized("missing_signature",
                            "X-Device-Key, X-Timestamp, X-Nonce and X-Signature are required.")
    if not stamp.isdigit() or not 16 <= len(nonce) <= 64 or not nonce.isascii():
        raise _unauthorized("bad_signature", "Malformed timestamp or nonce.")
    key = DeviceKey.objects.select_related("account").filter(key_id=key_id[:32]).first()
    if key is None or key.revoked_at is not None or not key.account.is_active:
        raise _unauthorized("unknown_key", "Unknown or revoked device key.")
    if abs(now - int(stamp)) > settings.DEVICE_SYNC_MAX_AGE_SECONDS:
        raise _unauthorized("stale_timestamp", "The request is too old (or from the future).")
    try:
        secret = secret_decrypt(key.secret_encrypted)
    except CredentialsUnreadable:
        raise _unauthorized("unknown_key", "Unknown or revoked device key.") from None
    expected = hmac.new(secret.encode(), f"{stamp}.{nonce}.".encode() + body,
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise _unauthorized("bad_signature", "The signature does not match the body.")
    # Last, so a forged request cannot burn a real device's nonce. cache.add is atomic.
    window = settings.DEVICE_SYNC_MAX_AGE_SECONDS * 2
    if not cache.add(f"device-nonce:{key.pk}:{nonce}", 1, timeout=window):
        raise _unauthorized("replayed_nonce", "This nonce was used already.")
    return key


#: The earliest plausible time in a push (MetaTrader 5 began in 2010; 2000 leaves room).
EARLIEST = 946_684_800  # 2000-01-01 00:00 UTC
#: How far ahead of our clock a pushed time may be: MetaTrader 5 times are the trade
#: server's wall clock (up to UTC+14), plus a skewed terminal clock.
AHEAD = 2 * 86_400


def _not_in_the_future(value: int) -> None:
    if value > time.time() + AHEAD:
        raise serializers.ValidationError("Ensure this time is not more than 2 days ahead.")


def _unix_time(**kwargs: Any) -> serializers.IntegerField:
    """Unix seconds between 2000 and two days from now: 2**40 - 1 (year 36812) used to
    overflow ``datetime`` into a 500."""
    return serializers.IntegerField(min_value=EARLIEST, validators=[_not_in_the_future],
                                    **kwargs)


def _number(**kwargs: Any) -> serializers.DecimalField:
    # max_digits/decimal_places None: the EA sends doubles; NaN and Infinity are refused.
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class AccountInfoIn(serializers.Serializer):
    login = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    server = serializers.CharField(max_length=100)
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    leverage = serializers.IntegerField(min_value=1, max_value=100_000)
    balance = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY)
    credit = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY, default=Decimal(0))
    profit = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY)
    equity = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY)
    margin = _number(min_value=0, max_value=MAX_MONEY)
    margin_free = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY)
    margin_level = _number(min_value=0, max_value=Decimal("1e12"))
    margin_so_call = _number(min_value=0, max_value=Decimal("1e6"), default=Decimal(100))
    margin_so_so = _number(min_value=0, max_value=Decimal("1e6"), default=Decimal(50))
    trade_allowed = serializers.BooleanField(default=True)


class PositionIn(serializers.Serializer):
    ticket = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    symbol = serializers.RegexField(r"^[A-Za-z0-9._#+-]{1,32}$")
    type = serializers.ChoiceField(choices=[mt5_api.POSITION_TYPE_BUY,
                                            mt5_api.POSITION_TYPE_SELL])
    volume = _number(min_value=Decimal("0.00000001"), max_value=Decimal(1_000_000))
    price_open = _number(min_value=Decimal("0.00000001"), max_value=MAX_PRICE)
    price_current = _number(min_value=Decimal("0.00000001"), max_value=MAX_PRICE)
    sl = _number(min_value=0, max_value=MAX_PRICE, default=Decimal(0))
    tp = _number(min_value=0, max_value=MAX_PRICE, default=Decimal(0))
    swap = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY, default=Decimal(0))
    profit = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY)
    magic = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0)
    comment = serializers.CharField(max_length=64, allow_blank=True, default="")
    time = _unix_time()


class DealIn(serializers.Serializer):
    ticket = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    order = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0)
    position_id = serializers.IntegerField(min_value=0, max_value=2**63 - 1)
    symbol = serializers.RegexField(r"^[A-Za-z0-9._#+-]{0,32}$", allow_blank=True)
    type = serializers.IntegerField(min_value=0, max_value=20)
    entry = serializers.IntegerField(min_value=0, max_value=3)
    reason = serializers.IntegerField(min_value=0, max_value=20)
    volume = _number(min_value=0, max_value=Decimal(1_000_000))
    price = _number(min_value=0, max_value=MAX_PRICE)
    profit = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY)
    swap = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY, default=Decimal(0))
    commission = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY, default=Decimal(0))
    fee = _number(min_value=-MAX_MONEY, max_value=MAX_MONEY, default=Decimal(0))
    magic = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0)
    comment = serializers.CharField(max_length=64, allow_blank=True, default="")
    time = _unix_time()


class SnapshotIn(serializers.Serializer):
    time = _unix_time(help_text="Unix seconds of the snapshot (terminal clock)")
    account = AccountInfoIn()
    positions = serializers.ListField(child=PositionIn(), max_length=MAX_POSITIONS)
    deals = serializers.ListField(child=DealIn(), max_length=MAX_POSITIONS, required=False,
                                  default=list)


def _first_error(errors: Any, path: str = "") -> tuple[str, str]:
    """The first offending field as a path like ``positions[3].volume``, and its message."""
    if isinstance(errors, dict):
        for name, inner in errors.items():
            step = f"{path}[{name}]" if isinstance(name, int) else (
                f"{path}.{name}" if path else str(name))
            return _first_error(inner, step)
    if isinstance(errors, list) and errors:
        for index, inner in enumerate(errors):
            if inner:
                if isinstance(inner, (dict, list)):
                    return _first_error(inner, f"{path}[{index}]" if isinstance(
                        inner, dict) else path)
                return path, str(inner)
    return path, str(errors)


def snapshot_validate(data: Any) -> dict[str, Any]:
    snapshot = SnapshotIn(data=data)
    if not snapshot.is_valid():
        field, message = _first_error(snapshot.errors)
        raise ApplicationError(f"{field}: {message}", code="invalid_snapshot",
                               status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
                               detail={"field": field, "error": message})
    tickets = [p["ticket"] for p in snapshot.validated_data["positions"]]
    if len(set(tickets)) != len(tickets):
        raise ApplicationError("positions: a ticket appears twice", code="invalid_snapshot",
                               status_code=422, detail={"field": "positions.ticket"})
    return snapshot.validated_data


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)




def snapshot_fetch(*, account: TradingAccount, snapshot: dict[str, Any]) -> AccountFetch:
    """A pushed snapshot as the same AccountFetch a pulled read produces."""
    info = snapshot["account"]
    cent = Decimal("0.01")
    margin = info["margin"].quantize(cent)
    state = AccountState(
        login=info["login"], server=info["server"], currency=info["currency"],
        leverage=info["leverage"], balance=info["balance"].quantize(cent),
        credit=info["credit"].quantize(cent), profit=info["profit"].quantize(cent),
        equity=info["equity"].quantize(cent), margin=margin,
        free_margin=info["margin_free"].quantize(cent),
        margin_level=info["margin_level"].quantize(cent) if margin > 0 else None,
        margin_so_call=info["margin_so_call"], margin_so_so=info["margin_so_so"],
        trade_allowed=info["trade_allowed"], server_time=_at(snapshot["time"]),
    )
    positions = tuple(
        BrokerPosition(
            ticket=p["ticket"], symbol=p["symbol"],
            side=mt5_api.position_side(p["type"]),
            volume=p["volume"], price_open=p["price_open"], price_current=p["price_current"],
            sl=p["sl"] or None, tp=p["tp"] or None, swap=p["swap"].quantize(cent),
            profit=p["profit"].quantize(cent), magic=p["magic"], comment=p["comment"],
            opened_at=_at(p["time"]),
        ) for p in snapshot["positions"]
    )
    deals = tuple(
        Deal(
            ticket=d["ticket"], order=d["order"], position_id=d["position_id"],
            symbol=d["symbol"],
            side=mt5_api.deal_side(d["type"]),
            entry=mt5_api.deal_entry(d["entry"]), reason=mt5_api.deal_reason(d["reason"]),
            volume=d["volume"], price=d["price"], profit=d["profit"], swap=d["swap"],
            commission=d["commission"], fee=d["fee"], magic=d["magic"],
            comment=d["comment"], time=_at(d["time"]), kind=mt5_api.deal_kind(d["type"]),
        ) for d in snapshot["deals"]
    )
    return AccountFetch(account_id=account.pk, started_at=timezone.now(), duration_ms=0,
                        state=state, positions=positions, deals=deals)


def push_implausibility(*, account: TradingAccount, fetch: AccountFetch
                        ) -> plausibility.Implausible | None:
    """``positions.plausibility.read_implausibility`` for a pushed read, against the
    account's last good read and the contract sizes we know for its server. Only balance
    operations not recorded before count as an explanation for an equity jump."""
    assert fetch.state is not None and fetch.positions is not None
    previous = None
    if account.equity is not None and account.balance is not None:
        previous = plausibility.Previous(equity=account.equity, balance=account.balance)
    cash_deals = [d for d in fetch.deals if d.kind.is_cash_flow]
    seen = set(CashFlow.objects.filter(account=account, ticket__in=[d.ticket for d in cash_deals])
               .values_list("ticket", flat=True)) if cash_deals else set()
    sizes = dict(Instrument.objects.filter(
        server=account.server, symbol__in={p.symbol for p in fetch.positions})
        .values_list("symbol", "contract_size"))
    return plausibility.read_implausibility(
        state=fetch.state, positions=fetch.positions,
        deals=[d for d in cash_deals if d.ticket not in seen], previous=previous,
        contract_sizes=sizes,
        tolerance_percent=Decimal(str(settings.PUSH_PLAUSIBILITY_TOLERANCE_PERCENT)),
        max_jump_percent=Decimal(str(settings.PUSH_MAX_JUMP_PERCENT)))


def push_reject(*, account: TradingAccount, fetch: AccountFetch,
                verdict: plausibility.Implausible) -> SyncLog:
    """Store an implausible push as a rejected sync log (its figures beside the account's)
    and alert the platform's owners, at most once per account per ``PUSH_REJECT_ALERT_
    SECONDS``; nothing else is written: no figure, position, snapshot, peak or guard."""
    assert fetch.state is not None and fetch.positions is not None
    state = fetch.state
    pushed = {"balance": str(state.balance), "credit": str(state.credit),
              "equity": str(state.equity), "margin": str(state.margin),
              "free_margin": str(state.free_margin),
              "margin_level": None if state.margin_level is None else str(state.margin_level),
              "profit": str(state.profit), "open_positions": len(fetch.positions)}
    stored = {"balance": str(account.balance), "equity": str(account.equity),
              "peak_equity": str(account.peak_equity)}
    metrics.push_rejected_total.labels(check=verdict.check).inc()
    with transaction.atomic():
        log = SyncLog.objects.create(
            account=account, started_at=fetch.started_at, duration_ms=0,
            result=SyncLog.Result.REJECTED, error_code=f"implausible_{verdict.check}",
            error_message=verdict.reason, before=stored, after=pushed)
        if cache.add(f"push-rejected-alert:{account.pk}", 1,
                     timeout=settings.PUSH_REJECT_ALERT_SECONDS):
            for owner in User.objects.filter(role=User.Role.OWNER, is_active=True):
                alert_raise(user=owner, account=account, kind="push_rejected",
                            text=f"{account.login}@{account.server}: an EA push was "
                                   f"rejected ({verdict.check}): {verdict.reason}",
                            payload={"check": verdict.check, "sync_log": log.pk})
    return log


def device_snapshot_apply(*, key: DeviceKey, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Apply a verified, validated snapshot through the sync service (one code path).

    A snapshot not newer than the last one applied is ignored (out-of-order delivery).
    While a pulled sync of the same account holds its lease: 409 ``sync_in_progress``.
    """
    account = key.account
    # compared as text: an IBKR account's login is its id (DU1234567), never an EA's number
    if str(snapshot["account"]["login"]) != account.login:
        raise ApplicationError("The snapshot is for another account than the key's.",
                               code="login_mismatch", status_code=422,
                               detail={"field": "account.login"})
    taken_at = _at(snapshot["time"])
    verdict: plausibility.Implausible | None = None
    token, leased = sync_lease_acquire(account_ids=[account.pk])
    if not leased:
        raise ApplicationError("A sync of this account is running; send again shortly.",
                               code="sync_in_progress", status_code=409,
                               headers={"Retry-After": "1"})
    try:
        # Checked under the lease: two pushes racing each other are ordered here, and the
        # last good read the plausibility check compares with cannot move meanwhile.
        current = TradingAccount.objects.get(pk=account.pk)
        if current.last_snapshot_at is not None and taken_at <= current.last_snapshot_at:
            return {"status": "ignored_out_of_order", "account_id": account.pk}
        fetch = snapshot_fetch(account=account, snapshot=snapshot)
        verdict = push_implausibility(account=current, fetch=fetch)
        if verdict is not None:
            push_reject(account=current, fetch=fetch, verdict=verdict)
        else:
            outcome = apply(fetches=[fetch], token=token)
    finally:
        sync_lease_release(token=token)
    if verdict is not None:
        raise ApplicationError(
            f"The snapshot does not add up ({verdict.check}): {verdict.reason}. It was "
            "stored as rejected and the owner alerted; nothing moved.",
            code="implausible_snapshot", status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail={"check": verdict.check, "reason": verdict.reason})
    if outcome.synced:
        TradingAccount.objects.filter(pk=account.pk).update(last_snapshot_at=taken_at)
        DeviceKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return {"status": "applied" if outcome.synced else "skipped", "account_id": account.pk,
            "positions": len(snapshot["positions"])}
