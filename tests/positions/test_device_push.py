"""EA device keys and signed snapshot pushes: only an intact, fresh, first-time, signed
snapshot is stored, and it goes through the same sync (and reconciliation) as a pull."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import DeviceKey
from positions.models import CashFlow, Position, SyncLog
from reconciliation.models import ReconciliationLog
from tests.factories import TradingAccountFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/devices/sync"


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def account(member):
    return TradingAccountFactory(user=member, login="7700001", server="Broker-Live")


@pytest.fixture
def device(api, account):
    response = api.post("/api/v1/devices", {"account_id": account.pk, "name": "EA on VPS"},
                        format="json")
    assert response.status_code == 201
    return response.json()


def snapshot(login: int = 7700001, *, at: int | None = None, positions=None) -> dict:
    return {
        "time": at or int(time.time()),
        "account": {"login": login, "server": "Broker-Live", "currency": "USD",
                    "leverage": 100, "balance": 10000.0, "credit": 0.0, "profit": 81.0,
                    "equity": 10081.0, "margin": 1072.19, "margin_free": 9008.81,
                    "margin_level": 940.23, "margin_so_call": 100.0, "margin_so_so": 50.0,
                    "trade_allowed": True},
        "positions": positions if positions is not None else [
            {"ticket": 501, "symbol": "EURUSD", "type": 0, "volume": 1.0,
             "price_open": 1.07219, "price_current": 1.073, "sl": 0.0, "tp": 0.0,
             "swap": 0.0, "profit": 81.0, "magic": 0, "comment": "", "time": 1492592400},
        ],
    }


def signed(client, device, body: bytes, *, stamp: int | None = None, nonce: str | None = None,
           secret: str | None = None):
    stamp = stamp if stamp is not None else int(time.time())
    nonce = nonce or uuid.uuid4().hex
    signature = hmac.new((secret or device["secret"]).encode(),
                         f"{stamp}.{nonce}.".encode() + body, hashlib.sha256).hexdigest()
    return client.post(URL, data=body, content_type="application/json",
                       HTTP_X_DEVICE_KEY=device["key_id"], HTTP_X_TIMESTAMP=str(stamp),
                       HTTP_X_NONCE=nonce, HTTP_X_SIGNATURE=signature)


def test_the_secret_is_shown_once_and_stored_encrypted(api, device):
    key = DeviceKey.objects.get()
    assert device["secret"] not in key.secret_encrypted
    assert key.fingerprint == hashlib.sha256(device["secret"].encode()).hexdigest()
    listed = api.get("/api/v1/devices").json()
    assert "secret" not in listed[0] and listed[0]["key_id"] == device["key_id"]


def test_a_signed_snapshot_is_synced_like_a_pull(anon_api, device, account):
    response = signed(anon_api, device, json.dumps(snapshot()).encode())
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "applied"
    account.refresh_from_db()
    assert str(account.equity) == "10081.00" and account.sync_status == "healthy"
    position = Position.objects.get(account=account)
    assert (position.ticket, str(position.profit)) == (501, "81.00")
    assert SyncLog.objects.get(account=account).result == "ok"
    # reconciliation ran too: a position with magic 0 is a person's
    assert ReconciliationLog.objects.filter(account=account, kind="manual").exists()


def test_a_vanished_position_closes_with_the_pushed_deal(anon_api, device, account):
    signed(anon_api, device, json.dumps(snapshot(at=int(time.time()) - 10)).encode())
    later = snapshot(positions=[])
    # flat after the stop: the −104.00 realized is in the balance, no margin (a push must
    # add up: positions.plausibility)
    later["account"].update(balance=9896.0, profit=0.0, equity=9896.0, margin=0.0,
                            margin_free=9896.0, margin_level=0.0)
    later["deals"] = [{"ticket": 9001, "order": 9000, "position_id": 501, "symbol": "EURUSD",
                       "type": 1, "entry": 1, "reason": 4, "volume": 1.0, "price": 1.0712,
                       "profit": -99.0, "swap": -1.5, "commission": -3.5, "fee": 0.0,
                       "magic": 0, "comment": "[sl 1.07120]", "time": int(time.time())}]
    assert signed(anon_api, device, json.dumps(later).encode()).status_code == 200
    position = Position.objects.get(account=account, ticket=501)
    # realized = −99.00 − 1.50 − 3.50 = −104.00 USD, closed by its stop loss
    assert (position.status, position.close_reason, str(position.realized_pnl)) == (
        "closed", "sl", "-104.00")


def test_a_pushed_withdrawal_moves_the_peak_not_the_drawdown(anon_api, device, account):
    signed(anon_api, device, json.dumps(snapshot(at=int(time.time()) - 10)).encode())
    account.refresh_from_db()
    assert account.peak_equity == Decimal("10081.00")
    later = snapshot()
    # 2,500 out (DEAL_TYPE_BALANCE = 2, negative): balance 7,500, equity 7,581
    later["account"].update(balance=7500.0, equity=7581.0, margin_free=6508.81,
                            margin_level=707.06)
    later["deals"] = [{"ticket": 9002, "order": 0, "position_id": 0, "symbol": "",
                       "type": 2, "entry": 0, "reason": 0, "volume": 0.0, "price": 0.0,
                       "profit": -2500.0, "swap": 0.0, "commission": 0.0, "fee": 0.0,
                       "magic": 0, "comment": "withdrawal", "time": int(time.time())}]
    assert signed(anon_api, device, json.dumps(later).encode()).status_code == 200
    account.refresh_from_db()
    # peak 10,081 − 2,500 = 7,581 = equity: drawdown 0, not 24.8 %
    assert (account.peak_equity, account.drawdown_percent) == (Decimal("7581.00"),
                                                              Decimal("0.00"))
    assert CashFlow.objects.get(account=account, ticket=9002).amount == Decimal("-2500.00")


@pytest.mark.parametrize("attack", ["tampered", "wrong_secret", "stale", "future",
                                    "no_signature", "revoked", "unknown_key"])
def test_bad_signatures_are_401_and_store_nothing(anon_api, api, device, attack):
    body = json.dumps(snapshot()).encode()
    if attack == "tampered":
        stamp, nonce = int(time.time()), uuid.uuid4().hex
        signature = hmac.new(device["secret"].encode(), f"{stamp}.{nonce}.".encode() + body,
                             hashlib.sha256).hexdigest()
        response = anon_api.post(URL, data=body.replace(b"10081.0", b"99999.0"),
                                 content_type="application/json",
                                 HTTP_X_DEVICE_KEY=device["key_id"], HTTP_X_TIMESTAMP=str(stamp),
                                 HTTP_X_NONCE=nonce, HTTP_X_SIGNATURE=signature)
    elif attack == "wrong_secret":
        response = signed(anon_api, device, body, secret="not-the-secret")
    elif attack == "stale":
        response = signed(anon_api, device, body, stamp=int(time.time()) - 310)
    elif attack == "future":
        response = signed(anon_api, device, body, stamp=int(time.time()) + 310)  # +301 raced
    elif attack == "no_signature":
        response = anon_api.post(URL, data=body, content_type="application/json")
    elif attack == "revoked":
        assert api.delete(f"/api/v1/devices/{DeviceKey.objects.get().pk}").status_code == 204
        response = signed(anon_api, device, body)
    else:
        response = signed(anon_api, {**device, "key_id": "dk_0000000000000000"}, body)
    assert response.status_code == 401
    assert not Position.objects.exists() and not SyncLog.objects.exists()


def test_a_replayed_nonce_is_refused(anon_api, device):
    body = json.dumps(snapshot()).encode()
    assert signed(anon_api, device, body, nonce="n" * 20).status_code == 200
    replay = signed(anon_api, device, body, nonce="n" * 20)
    assert replay.status_code == 401 and replay.json()["code"] == "replayed_nonce"
    assert SyncLog.objects.count() == 1


def test_an_older_snapshot_is_ignored(anon_api, device, account):
    now = int(time.time())
    signed(anon_api, device, json.dumps(snapshot(at=now)).encode())
    older = snapshot(at=now - 60, positions=[])
    response = signed(anon_api, device, json.dumps(older).encode())
    assert response.json()["status"] == "ignored_out_of_order"
    assert Position.objects.get(account=account).status == "open"


def test_a_snapshot_for_another_login_is_422(anon_api, device):
    response = signed(anon_api, device, json.dumps(snapshot(login=1234)).encode())
    assert response.status_code == 422 and response.json()["code"] == "login_mismatch"


@pytest.mark.parametrize(("path", "value", "field"), [
    (("positions", 0, "volume"), -1, "positions[0].volume"),
    (("positions", 0, "price_open"), "NaN", "positions[0].price_open"),
    (("positions", 0, "profit"), "Infinity", "positions[0].profit"),
    (("positions", 0, "type"), 7, "positions[0].type"),
    (("account", "currency"), "usd!", "account.currency"),
    (("account", "equity"), None, "account.equity"),
])
def test_invalid_fields_are_422_naming_the_field(anon_api, device, path, value, field):
    body = snapshot()
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    response = signed(anon_api, device, json.dumps(body).encode())
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == field
    assert not Position.objects.exists()


def test_too_many_positions_and_oversized_bodies(anon_api, device, settings):
    many = snapshot(positions=[dict(snapshot()["positions"][0], ticket=n)
                               for n in range(1, 1002)])
    response = signed(anon_api, device, json.dumps(many).encode())
    assert response.status_code == 422 and response.json()["detail"]["field"] == "positions"
    settings.DEVICE_SYNC_MAX_BODY_BYTES = 1000
    big = signed(anon_api, device, json.dumps(snapshot()).encode() + b" " * 2000)
    assert big.status_code == 413
    assert not SyncLog.objects.exists()


def test_device_keys_belong_to_their_member(stranger_api, api, account, device):
    assert stranger_api.get("/api/v1/devices").json() == []
    key = DeviceKey.objects.get()
    assert stranger_api.delete(f"/api/v1/devices/{key.pk}").status_code == 404
    created = stranger_api.post("/api/v1/devices", {"account_id": account.pk, "name": "x"},
                                format="json")
    assert created.status_code == 404
    assert api.delete("/api/v1/devices/abc").status_code == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=json_values)
def test_any_signed_junk_is_refused_cleanly(anon_api, device, junk):
    response = signed(anon_api, device, json.dumps(junk).encode())
    assert response.status_code in (400, 422)
    assert not SyncLog.objects.exists() and not Position.objects.exists()
