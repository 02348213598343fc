"""An implausible EA push never moves the guard (issue 16): a correctly signed snapshot
whose figures do not add up is stored as rejected with the reason, alerts the owner, and
never moves the peak, the figures or the guard."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.gateway import AccountState, BrokerPosition, Deal, DealKind, DealReason, Side
from guards.models import LiquidationEpisode
from notifications.models import Alert
from positions.models import EquitySnapshot, SyncLog
from positions.plausibility import Previous, read_implausibility
from tests.positions import test_device_push as base
from tests.positions.test_device_push import signed, snapshot

_fresh_cache, account, device = base._fresh_cache, base.account, base.device
D = Decimal
AT = datetime(2026, 1, 5, 12, tzinfo=UTC)


def state(**changes) -> AccountState:
    # the README's snapshot: 10,000 + 81 floating = 10,081; margin level 10,081 ÷ 1,072.19
    fields = dict(login=1, server="S", currency="USD", leverage=100, balance=D("10000"),
                  credit=D(0), profit=D("81"), equity=D("10081"), margin=D("1072.19"),
                  free_margin=D("9008.81"), margin_level=D("940.23"), margin_so_call=D(100),
                  margin_so_so=D(50), trade_allowed=True, server_time=AT)
    return AccountState(**{**fields, **changes})


POSITION = BrokerPosition(ticket=501, symbol="EURUSD", side=Side.BUY, volume=D("1"),
                          price_open=D("1.07219"), price_current=D("1.073"), sl=None,
                          tp=None, swap=D(0), profit=D("81"), magic=0, comment="",
                          opened_at=AT)


def deposit(amount: str) -> Deal:
    return Deal(ticket=9, order=0, position_id=0, symbol="", side=None, entry="in",
                reason=DealReason.OTHER, volume=D(0), price=D(0), profit=D(amount),
                swap=D(0), commission=D(0), fee=D(0), magic=0, comment="", time=AT,
                kind=DealKind.BALANCE)


def judge(st, positions=(POSITION,), deals=(), previous=None, sizes=None):
    verdict = read_implausibility(state=st, positions=tuple(positions), deals=deals,
                                  previous=previous, contract_sizes=sizes or {},
                                  tolerance_percent=D("0.5"), max_jump_percent=D(20))
    return None if verdict is None else verdict.check


@pytest.mark.parametrize(("st", "positions", "deals", "previous", "sizes", "check"), [
    (state(), [POSITION], [], None, {"EURUSD": D(100000)}, None),
    # the attack: equity × 100 alone
    (state(equity=D("1008100"), free_margin=D("1007027.81"), margin_level=D("94022.51")),
     [POSITION], [], None, {}, "equity_identity"),
    # a tick of skew (7.14 on 10,000) is inside 0.5 % of the balance (50.00)
    (state(equity=D("10088.14"), free_margin=D("9015.95"), margin_level=D("940.89")),
     [POSITION], [], None, {}, None),
    (state(free_margin=D("5000")), [POSITION], [], None, {}, "free_margin"),
    (state(margin_level=D("100")), [POSITION], [], None, {}, "margin_level"),
    # margin with nothing open
    (state(profit=D(0), equity=D("10000"), free_margin=D("8927.81"),
           margin_level=D("932.68")), [], [], None, {}, "margin"),
    # 1 lot EURUSD at 1:100 needs 1,073: 5 × that is the ceiling, 100,000 is not plausible
    (state(margin=D("100000"), free_margin=D("-89919"), margin_level=D("10.08")),
     [POSITION], [], None, {"EURUSD": D(100000)}, "margin"),
    # everything × 100, consistently: only the jump against the last good read catches it
    (state(balance=D("1000000"), profit=D("8100"), equity=D("1008100"),
           margin=D("107219"), free_margin=D("900881"), margin_level=D("940.23")),
     [BrokerPosition(**{**{f: getattr(POSITION, f) for f in POSITION.__slots__},
                        "profit": D("8100"), "volume": D(100)})],
     [], Previous(equity=D("10081"), balance=D("10000")), {}, "jump"),
    # the same jump explained by a deposit of 998,019 is fine
    (state(balance=D("1008019"), equity=D("1008100"), free_margin=D("1007027.81"),
           margin_level=D("94022.51")),
     [POSITION], [deposit("998019")], Previous(equity=D("10081"), balance=D("10000")), {},
     None),
    # a 15 % loss in one read is a market, not a forgery (limit 20 %)
    (state(balance=D("8569"), equity=D("8650"), free_margin=D("7577.81"),
           margin_level=D("806.76")),
     [POSITION], [], Previous(equity=D("10081"), balance=D("10000")), {}, None),
])
def test_plausibility_checks(st, positions, deals, previous, sizes, check):
    assert judge(st, positions, deals, previous, sizes) == check


@pytest.mark.django_db
def test_an_equity_times_100_push_is_rejected_stored_and_alerted(anon_api, device, account,
                                                                  owner):
    first = signed(anon_api, device, json.dumps(snapshot(at=int(time.time()) - 20)).encode())
    assert first.status_code == 200 and first.json()["status"] == "applied"
    account.refresh_from_db()
    peak, equity = account.peak_equity, account.equity
    forged = snapshot(at=int(time.time()) - 10)
    forged["account"].update(equity=1008100.0, margin_free=1007027.81, margin_level=94022.51)
    response = signed(anon_api, device, json.dumps(forged).encode())
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "implausible_snapshot"
    assert response.json()["detail"]["check"] == "equity_identity"
    log = SyncLog.objects.get(account=account, result="rejected")
    assert log.error_code == "implausible_equity_identity"
    assert "equity 1008100.00" in log.error_message
    assert log.after["equity"] == "1008100.00"
    alert = Alert.objects.get(kind="push_rejected")
    assert alert.user == owner and alert.account_id == account.pk
    account.refresh_from_db()
    assert (account.peak_equity, account.equity) == (peak, equity)
    assert EquitySnapshot.objects.filter(account=account).count() == 1
    assert not LiquidationEpisode.objects.exists()
    # the next honest read is applied and the drawdown stays what it was
    honest = signed(anon_api, device, json.dumps(snapshot()).encode())
    assert honest.json()["status"] == "applied"
    account.refresh_from_db()
    assert account.drawdown_percent == Decimal("0.00")
    assert not LiquidationEpisode.objects.exists()


@pytest.mark.django_db
def test_a_consistent_jump_is_rejected_and_alerted_once(anon_api, device, account, owner):
    signed(anon_api, device, json.dumps(snapshot(at=int(time.time()) - 30)).encode())
    scaled = snapshot(positions=[dict(snapshot()["positions"][0], volume=100.0,
                                      profit=8100.0)])
    scaled["account"].update(balance=1000000.0, profit=8100.0, equity=1008100.0,
                             margin=107219.0, margin_free=900881.0, margin_level=940.23)
    for offset in (20, 10):
        scaled["time"] = int(time.time()) - offset
        response = signed(anon_api, device, json.dumps(scaled).encode())
        assert response.status_code == 422
        assert response.json()["detail"]["check"] == "jump"
    assert SyncLog.objects.filter(account=account, result="rejected").count() == 2
    assert Alert.objects.filter(kind="push_rejected").count() == 1  # once per 5 minutes
    account.refresh_from_db()
    assert account.peak_equity == Decimal("10081.00")
