"""Risk configuration (one row, cached by version, audited) and position sizing."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status

from config.errors import ApplicationError
from risk.models import RISK_MAX, RISK_MIN, RiskConfiguration, RiskConfigurationChange

VERSION_KEY = "risk:config:version"
VERSION_TTL = 30  # seconds: a lost cache write heals itself this fast
OBJECT_TTL = 3600
EDITABLE = ("fixed_risk_percent", "entry_split_1_percent", "entry_split_2_percent",
            "entry_split_3_percent", "margin_buffer_percent")


def _defaults() -> dict[str, Any]:
    splits = [Decimal(str(s)) for s in settings.ENTRY_SPLIT_PERCENTS]
    return {
        "fixed_risk_percent": Decimal(str(settings.DEFAULT_FIXED_RISK_PERCENT)),
        "entry_split_1_percent": splits[0],
        "entry_split_2_percent": splits[1],
        "entry_split_3_percent": splits[2],
        "margin_buffer_percent": Decimal(str(settings.MARGIN_BUFFER_PERCENT)),
    }


def _object_key(version: int) -> str:
    return f"risk:config:v{version}"


def risk_configuration_get() -> RiskConfiguration:
    """The configuration every process uses. The database row is the truth: the cache
    holds it per version, and a change bumps the version every process reads first."""
    version = cache.get(VERSION_KEY)
    if version is not None:
        cached = cache.get(_object_key(version))
        if cached is not None:
            return cached
    config, created = RiskConfiguration.objects.get_or_create(pk=1, defaults=_defaults())
    if created:
        config.refresh_from_db()  # the stored (quantized) figures, not the defaults given
    _publish(config)
    return config


def _publish(config: RiskConfiguration) -> None:
    cache.set(_object_key(config.version), config, timeout=OBJECT_TTL)
    cache.set(VERSION_KEY, config.version, timeout=VERSION_TTL)


def snapshot(config: RiskConfiguration) -> dict[str, str]:
    return {name: str(getattr(config, name)) for name in EDITABLE}


def risk_configuration_validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check a full set of editable values; returns them typed. Raises ApplicationError
    422: ``out_of_bounds`` (with the accepted bounds), ``invalid_splits``, ``invalid``."""
    clean: dict[str, Any] = {}
    for name in EDITABLE:
        try:
            number = Decimal(str(values[name]))
        except (InvalidOperation, ValueError):
            raise ApplicationError(f"{name} must be a number", code="invalid",
                                   status_code=422, detail={"field": name}) from None
        if not number.is_finite():
            raise ApplicationError(f"{name} must be a finite number", code="invalid",
                                   status_code=422, detail={"field": name})
        clean[name] = number.quantize(Decimal("0.01"))
    risk = clean["fixed_risk_percent"]
    if not RISK_MIN <= risk <= RISK_MAX:
        raise ApplicationError(
            f"The risk must be between {RISK_MIN} % and {RISK_MAX} %.", code="out_of_bounds",
            status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail={"field": "fixed_risk_percent", "min": str(RISK_MIN), "max": str(RISK_MAX),
                    "given": str(values["fixed_risk_percent"])})
    splits = [clean[f"entry_split_{n}_percent"] for n in (1, 2, 3)]
    if min(splits) < 0 or sum(splits) != 100:
        raise ApplicationError("The entry splits must be ≥ 0 and sum to 100.",
                               code="invalid_splits", status_code=422,
                               detail={"splits": [str(s) for s in splits]})
    if not Decimal(0) <= clean["margin_buffer_percent"] <= Decimal(95):
        raise ApplicationError("The margin buffer must be between 0 % and 95 %.",
                               code="out_of_bounds", status_code=422,
                               detail={"field": "margin_buffer_percent", "min": "0",
                                       "max": "95"})
    return clean


@transaction.atomic
def risk_configuration_update(*, changed_by: Any, source: str,
                              **changes: Any) -> RiskConfiguration:
    """Apply ``changes`` (any editable fields) with validation and an audit row.

    The row is locked, so two owners saving at once are applied one after the other, each
    audited against the state it really replaced. The new version reaches every process's
    cache when the transaction commits. The answer carries ``previous_fixed_risk_percent``,
    the risk % this change replaced.
    """
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ApplicationError(f"Unknown fields: {sorted(unknown)}", code="invalid",
                               status_code=422, detail={"fields": sorted(unknown)})
    RiskConfiguration.objects.get_or_create(pk=1, defaults=_defaults())
    config = RiskConfiguration.objects.select_for_update().get(pk=1)
    previous = snapshot(config)
    clean = risk_configuration_validate({**previous, **changes})
    for name, value in clean.items():
        setattr(config, name, value)
    config.updated_by = changed_by
    config.version = F("version") + 1
    config.save()
    config.refresh_from_db()
    RiskConfigurationChange.objects.create(
        version=config.version, previous=previous, new=snapshot(config),
        changed_by=changed_by, source=source, changed_at=timezone.now())
    transaction.on_commit(lambda: _publish(config))
    # what this change replaced, read under the lock (the API answers it)
    config.previous_fixed_risk_percent = Decimal(  # type: ignore[attr-defined]
        str(previous["fixed_risk_percent"]))
    return config


# --- position sizing ---
REJECTED_BEFORE_SIZING = {
    "platform_not_active": "The platform is not active: no new setups.",
    "trading_blocked": "A period loss rule stopped new trades on this account.",
    "account_stale": "The account's figures are older than the freshness limit.",
    "account_unsynced": "The account has never been synced.",
    "unknown_symbol": "The broker does not offer this symbol.",
    "broker_unavailable": "The broker could not be asked for the symbol's rules.",
}


def _rejection(code: str, config: RiskConfiguration, account: Any,
               detail: str = "") -> dict[str, Any]:
    zero = Decimal("0.00")
    return {
        "setup_approved": False, "rejection_reason": code,
        "rejection_detail": detail or REJECTED_BEFORE_SIZING[code],
        "global_risk_percent": config.fixed_risk_percent,
        "allocated_risk_amount": zero, "risk_amount_entries": (zero, zero, zero),
        "volume_entries": (Decimal(0), Decimal(0), Decimal(0)), "total_volume": Decimal(0),
        "estimated_margin_entries": (zero, zero, zero), "total_estimated_margin": zero,
        "available_margin": account.free_margin or zero, "margin_utilization_percent": None,
        "loss_per_lot": None, "tick_value_used": None, "tick_value_source": None,
    }


def position_size(*, account: Any, requested_by: Any, signal_id: str, instrument: str,
                  side: str, entry_price: Decimal, stop_loss: Decimal,
                  take_profit: Decimal | None) -> dict[str, Any]:
    """Size a setup for ``account`` from the global risk %; log it; register its entries.

    Uses the account's last synced balance and free margin (rejected if older than
    ``MT5_ACCOUNT_FRESHNESS_MINUTES``) and the symbol's live rules from the gateway (tick
    size and value in the account currency, volume limits, margin for one lot: MetaTrader 5
    symbol_info, cached up to ``risk.symbols.SYMBOL_SPEC_TTL_SECONDS`` per server, symbol
    and account currency, and order_calc_margin). The platform state and the guard state are
    read from the account when ``risk.selectors.account_for_sizing`` read it (else one query
    each). The stop is sized with the loss tick value
    (``trade_tick_value_loss``) when the broker reports one, else the tick value; the answer
    and the log say which (``tick_value_used``, ``tick_value_source``; ``None`` when refused
    before the symbol's rules were read). Every request, approved or not, is one
    ``TradeSetupRiskLog``. An approved setup registers its entries as expected trades in
    one INSERT (``reconciliation.services.expected_trades_register``), idempotently per
    (account, signal): asking twice never doubles the exposure. ``side`` is a
    ``brokers.gateway.Side`` value (ValueError otherwise).
    Returns the answer's fields plus ``log_id`` and ``expected_trades`` (tags).
    """
    from datetime import timedelta

    from accounts.gateways import account_gateway
    from brokers.errors import BrokerError, BrokerUnknownSymbol
    from brokers.gateway import Side
    from reconciliation.services import expected_trades_register
    from risk.models import TradeSetupRiskLog
    from risk.sizing import SizingInput, size_position
    from risk.symbols import symbol_spec_cached

    config = risk_configuration_get()
    now = timezone.now()
    freshness = timedelta(minutes=settings.MT5_ACCOUNT_FRESHNESS_MINUTES)
    trade_side = Side(side)  # ValueError for anything but buy / sell
    answer: dict[str, Any]

    if _platform_state(account) != "active":
        answer = _rejection("platform_not_active", config, account)
    elif _trading_blocked(account):
        answer = _rejection("trading_blocked", config, account)
    elif account.last_synced_at is None or account.balance is None:
        answer = _rejection("account_unsynced", config, account)
    elif now - account.last_synced_at > freshness:
        answer = _rejection("account_stale", config, account)
    else:
        try:
            gateway = account_gateway(account)
            spec = symbol_spec_cached(gateway=gateway, server=account.server,
                                      symbol=instrument, currency=account.currency or "")
            margin_per_lot = gateway.margin_required(instrument, trade_side, Decimal(1),
                                                     entry_price)
        except BrokerUnknownSymbol:
            answer = _rejection("unknown_symbol", config, account)
        except BrokerError as exc:
            answer = _rejection("broker_unavailable", config, account, f"{exc.code}: {exc}")
        else:
            result = size_position(SizingInput(
                balance=account.balance, free_margin=account.free_margin or Decimal(0),
                risk_percent=config.fixed_risk_percent, splits=config.splits,
                margin_buffer_percent=config.margin_buffer_percent, side=trade_side,
                entry_price=entry_price, stop_loss=stop_loss, take_profit=take_profit,
                tick_size=spec.tick_size, tick_value=spec.tick_value,
                tick_value_loss=spec.tick_value_loss, volume_min=spec.volume_min,
                volume_step=spec.volume_step, volume_max=spec.volume_max,
                margin_per_lot=margin_per_lot,
            ))
            answer = {name: getattr(result, name) for name in result.__dataclass_fields__}
    with transaction.atomic():
        log = TradeSetupRiskLog.objects.create(
            account=account, requested_by=requested_by if getattr(
                requested_by, "pk", None) else None,
            signal_id=signal_id, instrument=instrument, side=side, entry_price=entry_price,
            stop_loss=stop_loss, take_profit=take_profit, config_version=config.version,
            global_risk_percent=config.fixed_risk_percent, balance=account.balance,
            tick_value_used=answer["tick_value_used"],
            tick_value_source=answer["tick_value_source"] or "",
            setup_approved=answer["setup_approved"],
            rejection_reason=answer["rejection_reason"] or "",
            total_volume=answer["total_volume"], result=_jsonable(answer), created_at=now,
        )
        tags: list[str] = []
        if answer["setup_approved"]:
            # one INSERT for the setup's entries (and one SELECT of their tags)
            trades = expected_trades_register(
                account=account, symbol=instrument, side=trade_side,
                entries=[(number, volume) for number, volume in enumerate(
                    answer["volume_entries"], start=1) if volume > 0],
                requested_price=entry_price, sl=stop_loss, tp=take_profit,
                signal_ref=signal_id, approval_ref=f"signal:{signal_id}",
                platform_checked=True)
            tags = [trade.tag for trade in trades]
    flat = {f"{name}_{n}": value
            for name, values in (("volume_entry", answer["volume_entries"]),
                                 ("estimated_margin_entry", answer["estimated_margin_entries"]))
            for n, value in enumerate(values, start=1)}
    return {**answer, **flat, "log_id": log.pk, "expected_trades": tags,
            "config_version": config.version}


def _platform_state(account: Any) -> str:
    """The kill switch's state: as ``risk.selectors.account_for_sizing`` read it with the
    account, else (another caller, or no row yet) from ``guards``."""
    state = getattr(account, "platform_state", None)
    if state is None:
        from guards.services import platform_state_get

        state = platform_state_get()
    return str(state)


def _trading_blocked(account: Any) -> bool:
    """Whether a period rule stopped new trades on ``account``: its guard state's
    ``trading_blocked`` (``guards.services.account_trading_blocked``), read from the row
    ``account_for_sizing`` joined (no query), else one query; no guard state row: not
    blocked."""
    from guards.models import AccountGuardState

    try:
        return bool(account.guard_state.trading_blocked)
    except AccountGuardState.DoesNotExist:
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value
