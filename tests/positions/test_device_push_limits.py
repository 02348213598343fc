"""EA pushes that used to reach a 500 or a vague 400 (issue 16): times out of any plausible
range, bare NaN/Infinity tokens, JSON nested too deep. Each is refused by name, nothing
stored."""

from __future__ import annotations

import json
import time

import pytest

from positions.models import Position, SyncLog
from tests.positions import test_device_push as base
from tests.positions.test_device_push import signed, snapshot

# the push tests' fixtures: a member's account, its device key, an empty cache
_fresh_cache, account, device = base._fresh_cache, base.account, base.device

pytestmark = pytest.mark.django_db


def _deal(at: int) -> dict:
    return {"ticket": 9001, "order": 9000, "position_id": 501, "symbol": "EURUSD", "type": 1,
            "entry": 1, "reason": 4, "volume": 1.0, "price": 1.0712, "profit": -99.0,
            "swap": 0.0, "commission": 0.0, "fee": 0.0, "magic": 0, "comment": "",
            "time": at}


@pytest.mark.parametrize(("where", "value", "field"), [
    ("time", 2**40 - 1, "time"),            # year 36812: datetime overflowed into a 500
    ("time", 2**63, "time"),
    ("time", 0, "time"),                    # 1970: no MetaTrader 5 account is that old
    ("time", int(time.time()) + 10 * 86_400, "time"),
    ("position", 2**40 - 1, "positions[0].time"),
    ("position", -5, "positions[0].time"),
    ("deal", 2**40 - 1, "deals[0].time"),
])
def test_an_implausible_time_is_422_naming_the_field(anon_api, device, where, value, field):
    body = snapshot()
    if where == "time":
        body["time"] = value
    elif where == "position":
        body["positions"][0]["time"] = value
    else:
        body["deals"] = [_deal(value)]
    response = signed(anon_api, device, json.dumps(body).encode())
    assert response.status_code == 422, response.content
    assert response.json()["detail"]["field"] == field
    assert not SyncLog.objects.exists() and not Position.objects.exists()


@pytest.mark.parametrize(("text", "field"), [
    ('"volume": NaN', "positions[0].volume"),
    ('"volume": Infinity', "positions[0].volume"),
    ('"volume": -Infinity', "positions[0].volume"),
])
def test_bare_nan_and_infinity_tokens_are_422_naming_the_field(anon_api, device, text,
                                                               field):
    body = json.dumps(snapshot()).replace('"volume": 1.0', text).encode()
    assert text.encode() in body
    response = signed(anon_api, device, body)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invalid_snapshot"
    assert response.json()["detail"]["field"] == field
    assert not SyncLog.objects.exists()


def test_a_bare_nan_in_the_account_is_named_too(anon_api, device):
    body = json.dumps(snapshot()).replace('"equity": 10081.0', '"equity": NaN').encode()
    response = signed(anon_api, device, body)
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == "account.equity"


def test_a_signed_deeply_nested_body_is_400(anon_api, device):
    response = signed(anon_api, device, b"[" * 1000 + b"]" * 1000)
    assert response.status_code == 400
    assert response.json()["code"] == "json_too_deep"
