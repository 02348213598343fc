"""``GET /bench/bare-positions``: the baseline of bench/api_bench.py.

The same JSON as ``GET /api/v1/positions`` (``AccountPositionsOutput``: same field names,
same values, same positions in the same order) from the same tables, with plain Django:

- the same bearer token, validated by ``simplejwt``'s ``AccessToken`` (signature, expiry,
  token type), so both sides pay for auth; the user id is read from the token's claim and
  the user row is *not* loaded (DRF's ``JWTAuthentication`` loads it: one query more);
- one query for the member's active primary account, one for its open positions, both
  with ``.values()`` (no model instances);
- dicts built by hand, rendered by ``JsonResponse`` with DRF's compact separators and raw
  UTF-8, so the bodies have the same size.

Not for production: there is no permission layer, no content negotiation, no schema.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import TradingAccount
from positions.models import Position
from positions.selectors import PERCENT_BASES

ACCOUNT_FIELDS = (
    "id", "login", "currency", "balance", "equity", "margin", "free_margin", "margin_level",
    "drawdown_percent", "peak_equity", "last_synced_at", "sync_status", "sync_error_code",
    "sync_error_message",
)
POSITION_FIELDS = (
    "id", "ticket", "symbol", "side", "volume", "price_open", "price_current", "sl", "tp",
    "swap", "profit", "magic", "comment", "opened_at",
)
# Quantization exponents by decimal places, as DRF's DecimalField(decimal_places=n) uses.
_EXP = {places: Decimal(1).scaleb(-places) for places in (2, 4, 8)}
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
_HEALTHY = TradingAccount.SyncStatus.HEALTHY.value
_STALE = TradingAccount.SyncStatus.STALE.value


def _dec(value: Decimal | None, places: int) -> str | None:
    """A decimal as DRF renders it: quantized to ``places``, fixed-point string."""
    return None if value is None else f"{value.quantize(_EXP[places]):f}"


def _iso(value: Any) -> str | None:
    """A datetime as DRF renders it (ISO 8601 in the current zone, UTC as ``Z``)."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """part / whole × 100, rounded half up to 0.01 (positions.pnl.pnl_percent)."""
    if whole <= 0:
        return None
    return (part / whole * _HUNDRED).quantize(_CENT, rounding=ROUND_HALF_UP)


def _unauthorized(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@require_GET
def positions(request: HttpRequest) -> JsonResponse:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not raw:
        return _unauthorized("Authentication credentials were not provided.")
    try:
        token = AccessToken(raw)
    except TokenError:
        return _unauthorized("Given token not valid for any token type")
    user_id = token[jwt_settings.USER_ID_CLAIM]

    account = (TradingAccount.objects
               .filter(user_id=user_id, is_active=True, is_primary=True)
               .values(*ACCOUNT_FIELDS).first())
    if account is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    rows = list(Position.objects
                .filter(account_id=account["id"], status=Position.Status.OPEN)
                .order_by("-opened_at", "-ticket")
                .values(*POSITION_FIELDS))

    positions_out = []
    total_pnl = Decimal("0.00")
    for p in rows:
        total_pnl += p["profit"] + p["swap"]
        move = p["price_current"] - p["price_open"]
        if p["side"] == Position.Side.SELL:
            move = -move
        pnl_percent = _percent(move, p["price_open"])
        positions_out.append({
            "id": p["id"],
            "ticket": p["ticket"],
            "instrument": p["symbol"],
            "side": p["side"],
            "volume": _dec(p["volume"], 4),
            "entry_price": _dec(p["price_open"], 8),
            "current_price": _dec(p["price_current"], 8),
            "stop_loss": _dec(p["sl"], 8),
            "take_profit": _dec(p["tp"], 8),
            "swap": _dec(p["swap"], 2),
            "pnl": _dec(p["profit"], 2),
            "pnl_percent": None if pnl_percent is None else str(pnl_percent),
            "magic": p["magic"],
            "comment": p["comment"],
            "opened_at": _iso(p["opened_at"]),
        })

    # Freshness, as accounts.selectors.account_sync_view: an old answer is stale.
    last_synced_at = account["last_synced_at"]
    age = None if last_synced_at is None else (timezone.now() - last_synced_at).total_seconds()
    status = account["sync_status"]
    if status == _HEALTHY and (age is None or age > settings.ACCOUNT_CACHE_TTL_SECONDS):
        status = _STALE
    balance = account["balance"]

    body = {
        "account_id": account["id"],
        "login": account["login"],
        "currency": account["currency"],
        "balance": _dec(balance, 2),
        "equity": _dec(account["equity"], 2),
        "margin": _dec(account["margin"], 2),
        "free_margin": _dec(account["free_margin"], 2),
        "margin_level": _dec(account["margin_level"], 2),
        "drawdown_percent": _dec(account["drawdown_percent"], 2),
        "peak_equity": _dec(account["peak_equity"], 2),
        "open_positions_count": len(positions_out),
        "total_pnl": _dec(total_pnl, 2),
        "total_pnl_percent": _dec(_percent(total_pnl, balance) if balance else None, 2),
        "positions": positions_out,
        "last_updated": _iso(last_synced_at),
        "sync": {
            "status": status,
            "age_seconds": None if age is None else round(age, 1),
            "last_synced_at": _iso(last_synced_at),
            "error_code": account["sync_error_code"],
            "error_message": account["sync_error_message"],
        },
        "percent_bases": PERCENT_BASES,
    }
    return JsonResponse(body, json_dumps_params={"separators": (",", ":"),
                                                 "ensure_ascii": False})
