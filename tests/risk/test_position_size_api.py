"""POST /api/v1/risk/position-size against a synced account on the simulated terminal
(symbol rules and margin from the real bridge: symbol_info, order_calc_margin)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.utils import timezone

from accounts.models import TradingAccount
from positions.services import accounts_sync
from reconciliation.models import ExpectedTrade
from risk.models import TradeSetupRiskLog

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def synced(linked_account, login, **kwargs) -> TradingAccount:
    account = linked_account(login, **kwargs)
    accounts_sync(account_ids=[account.pk])
    account.refresh_from_db()
    assert account.sync_status == "healthy"
    return account


def setup_for(account, sim_bridge, *, points: int = 500, side: str = "buy", signal="S-1",
              symbol="EURUSD") -> tuple[dict, Decimal, Decimal]:
    bid, ask = (Decimal(str(x)) for x in sim_bridge.sim("sim_quote", "EURUSD"))
    entry = ask if side == "buy" else bid
    stop = entry - points * Decimal("0.00001") if side == "buy" else \
        entry + points * Decimal("0.00001")
    return ({"account_id": account.pk, "signal_id": signal, "instrument": symbol,
             "side": side, "entry_price": str(entry), "stop_loss": str(stop)}, bid, entry)


def cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_usd_account_sizes_three_entries_and_registers_them(api, sim_bridge, linked_account):
    account = synced(linked_account, 9301, balance="10000")
    payload, bid, _ = setup_for(account, sim_bridge)

    body = api.post("/api/v1/risk/position-size", payload, format="json").json()

    # budget = 10,000 × 3 % = 300 USD → 150 / 105 / 45 USD (50/35/15 %)
    # loss per lot at the stop = 500 points × 1.00 USD (EURUSD tick value, USD account)
    # → 0.30 / 0.21 / 0.09 lots
    assert body["setup_approved"] is True, body
    assert body["allocated_risk_amount"] == "300.00"
    assert (body["volume_entry_1"], body["volume_entry_2"], body["volume_entry_3"]) == (
        "0.3000", "0.2100", "0.0900")
    assert body["total_volume"] == "0.6000"
    # margin for 1 lot at 1:100 = 100,000 / 100 EUR at the simulator's EURUSD bid, in USD
    per_lot = cents(Decimal(1000) * bid)
    assert body["estimated_margin_entry_1"] == str(cents(Decimal("0.3") * per_lot))
    assert body["available_margin"] == "8000.00"  # 10,000 free × (1 − 20 %)
    assert len(body["expected_trades"]) == 3
    trades = ExpectedTrade.objects.filter(account=account).order_by("entry_number")
    assert [t.volume for t in trades] == [Decimal("0.3"), Decimal("0.21"), Decimal("0.09")]
    assert {t.approval_ref for t in trades} == {"signal:S-1"}


def test_asking_twice_for_one_signal_never_doubles_the_exposure(api, sim_bridge,
                                                                linked_account):
    account = synced(linked_account, 9302)
    payload, _, _ = setup_for(account, sim_bridge, signal="S-2")
    first = api.post("/api/v1/risk/position-size", payload, format="json").json()
    second = api.post("/api/v1/risk/position-size", payload, format="json").json()
    assert first["expected_trades"] == second["expected_trades"]
    assert ExpectedTrade.objects.filter(account=account).count() == 3
    assert TradeSetupRiskLog.objects.filter(account=account).count() == 2  # both audited


def test_gbp_account_uses_the_tick_value_in_gbp(api, sim_bridge, linked_account):
    account = synced(linked_account, 9303, currency="GBP")
    payload, _, _ = setup_for(account, sim_bridge)
    body = api.post("/api/v1/risk/position-size", payload, format="json").json()
    # tick value = 1 USD / GBPUSD 1.25 (the simulator's fixed rate) = 0.80 GBP per lot-tick
    # loss per lot = 500 × 0.80 = 400 GBP; budget 300 GBP → 150/105/45
    # → 0.375 → 0.37, 0.2625 → 0.26, 0.1125 → 0.11 lots (rounded down)
    assert (body["volume_entry_1"], body["volume_entry_2"], body["volume_entry_3"]) == (
        "0.3700", "0.2600", "0.1100")


class LossTickValueGateway:
    """The real gateway to the simulated terminal, whose symbol rules report a loss tick
    value of ``loss`` (the simulator's own loss tick value equals its tick value for these
    accounts, so it cannot tell which one the sizing used)."""

    def __init__(self, gateway, loss: Decimal):
        self._gateway, self._loss = gateway, loss

    def symbol_spec(self, symbol):
        return replace(self._gateway.symbol_spec(symbol), tick_value_loss=self._loss)

    def __getattr__(self, name):
        return getattr(self._gateway, name)


def test_sizing_uses_the_loss_tick_value_and_logs_it(api, sim_bridge, linked_account,
                                                     monkeypatch):
    import accounts.gateways

    real = accounts.gateways.account_gateway
    monkeypatch.setattr(accounts.gateways, "account_gateway",
                        lambda account: LossTickValueGateway(real(account), Decimal("0.84")))
    account = synced(linked_account, 9306, currency="GBP")
    payload, _, _ = setup_for(account, sim_bridge, signal="S-LOSS")

    body = api.post("/api/v1/risk/position-size", payload, format="json").json()

    # tick value 0.80 GBP (1 USD / 1.25), loss tick value 0.84 GBP as reported: sized by the
    # loss one, 500 × 0.84 = 420 GBP per lot; budget 300 GBP → 150 / 105 / 45
    # → 150/420 = 0.357 → 0.35, 105/420 = 0.25, 45/420 = 0.107 → 0.10 lots
    # (by the tick value they would be 0.37 / 0.26 / 0.11: 0.37 × 420 = 155.40 > 150)
    assert body["setup_approved"] is True, body
    assert (body["volume_entry_1"], body["volume_entry_2"], body["volume_entry_3"]) == (
        "0.3500", "0.2500", "0.1000")
    assert body["loss_per_lot"] == "420.00"
    assert (body["tick_value_used"], body["tick_value_source"]) == ("0.8400000000",
                                                                    "tick_value_loss")
    log = TradeSetupRiskLog.objects.get(account=account)
    assert (log.tick_value_used, log.tick_value_source) == (Decimal("0.84"),
                                                            "tick_value_loss")
    assert log.result["tick_value_used"] == "0.84"


def test_a_small_account_is_refused_rather_than_rounded_up(api, sim_bridge, linked_account):
    account = synced(linked_account, 9304, balance="100")
    payload, _, _ = setup_for(account, sim_bridge)
    body = api.post("/api/v1/risk/position-size", payload, format="json").json()
    # budget 3 USD, entry 1: 1.50 / 500 = 0.003 lots < 0.01 minimum
    assert (body["setup_approved"], body["rejection_reason"]) == (False,
                                                                  "volume_below_minimum")
    assert not ExpectedTrade.objects.filter(account=account).exists()


@pytest.mark.parametrize(("change", "reason"), [
    ("stale", "account_stale"),
    ("paused", "platform_not_active"),
    ("symbol", "unknown_symbol"),
    ("wrong_side", "stop_wrong_side"),
])
def test_rejections_are_logged_with_their_reason(api, owner, sim_bridge, linked_account,
                                                 change, reason):
    from guards.services import platform_state_set

    account = synced(linked_account, 9305)
    payload, _, entry = setup_for(account, sim_bridge)
    if change == "stale":
        TradingAccount.objects.filter(pk=account.pk).update(
            last_synced_at=timezone.now() - timedelta(minutes=6))
    elif change == "paused":
        platform_state_set(state="reducing", changed_by=owner, reason="test")
    elif change == "symbol":
        payload["instrument"] = "XAUUSD"
    else:
        payload["stop_loss"] = str(entry + Decimal("0.00500"))

    body = api.post("/api/v1/risk/position-size", payload, format="json").json()

    assert (body["setup_approved"], body["rejection_reason"]) == (False, reason)
    log = TradeSetupRiskLog.objects.get(account=account)
    assert (log.setup_approved, log.rejection_reason) == (False, reason)
    if reason != "stop_wrong_side":  # refused before the symbol's rules were read
        assert (body["tick_value_used"], body["tick_value_source"]) == (None, None)
        assert (log.tick_value_used, log.tick_value_source) == (None, "")
    assert not ExpectedTrade.objects.filter(account=account).exists()


def test_position_size_ownership_and_bad_input(api, stranger_api, anon_api, member):
    from tests.factories import TradingAccountFactory

    account = TradingAccountFactory(user=member)
    payload = {"account_id": account.pk, "signal_id": "S", "instrument": "EURUSD",
               "side": "buy", "entry_price": "1.1", "stop_loss": "1.09"}
    assert anon_api.post("/api/v1/risk/position-size", payload, format="json"
                         ).status_code == 401
    assert stranger_api.post("/api/v1/risk/position-size", payload, format="json"
                             ).status_code == 404
    for bad in ({"entry_price": "NaN"}, {"entry_price": "-1"}, {"side": "long"},
                {"instrument": "EUR/USD ;"}, {"signal_id": "s" * 65}):
        response = api.post("/api/v1/risk/position-size", {**payload, **bad}, format="json")
        assert response.status_code == 400, bad
    assert not TradeSetupRiskLog.objects.exists()
