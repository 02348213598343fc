"""/api/v1/accounts: link (verified through the real bridge and simulated terminal), list,
show, make primary, unlink. Every endpoint: 401, stranger 404, owner, bad input, happy."""

from __future__ import annotations

import pytest

from accounts.models import TradingAccount
from brokers import mt5_api
from brokers.mt5 import Mt5Gateway
from positions.models import Position
from tests.conftest import SIM_SERVER
from tests.factories import PositionFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/accounts"),
    ("post", "/api/v1/accounts"),
    ("get", "/api/v1/accounts/1"),
    ("delete", "/api/v1/accounts/1"),
    ("put", "/api/v1/accounts/1/primary"),
    ("get", "/api/v1/accounts/1/positions"),
    ("get", "/api/v1/accounts/1/summary"),
    ("get", "/api/v1/accounts/1/equity"),
    ("get", "/api/v1/positions"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_every_endpoint_needs_a_user(anon_api, method, url):
    response = getattr(anon_api, method)(url)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_token_pair_and_refresh(client, member):
    response = client.post("/api/v1/auth/token",
                           {"username": "member", "password": "pw-member-1"})
    assert response.status_code == 200
    tokens = response.json()
    refreshed = client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200 and "access" in refreshed.json()
    accounts = client.get("/api/v1/accounts",
                          HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert accounts.status_code == 200


def test_token_with_a_wrong_password_is_401(client, member):
    response = client.post("/api/v1/auth/token", {"username": "member", "password": "nope"})
    assert response.status_code == 401


# --- link ---
def link(api, login, password=None, server=SIM_SERVER):
    return api.post("/api/v1/accounts", {"login": login, "password": password or f"pw-{login}",
                                         "server": server, "broker_name": "Sim"},
                    format="json")


def test_link_verifies_and_the_first_account_is_primary(api, sim_bridge):
    sim_bridge.add_account(8101, currency="GBP", leverage=200)
    response = link(api, 8101)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["is_primary"] is True and body["read_only"] is False
    assert body["verified_at"] is not None
    assert (body["currency"], body["leverage"]) == ("GBP", 200)
    assert "password" not in str(body) and "credentials" not in str(body)
    sim_bridge.add_account(8102)
    assert link(api, 8102).json()["is_primary"] is False


def test_investor_password_links_read_only(api, sim_bridge):
    sim_bridge.add_account(8103)
    response = link(api, 8103, password="view-8103")
    assert response.status_code == 201
    assert response.json()["read_only"] is True


@pytest.mark.parametrize(("password", "server"), [("wrong", SIM_SERVER), (None, "NoSuch-Srv")])
def test_refused_login_is_422_and_stores_nothing(api, sim_bridge, password, server):
    sim_bridge.add_account(8104)
    response = link(api, 8104, password=password, server=server)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_credentials"
    assert not TradingAccount.objects.exists()


def test_bridge_timeout_is_503_and_stores_nothing(api, sim_bridge, settings):
    sim_bridge.add_account(8105)
    settings.MT5_CONNECTION_TIMEOUT = 1
    sim_bridge.sim("sim_inject_fault", "timeout", method="account_info", delay=3)
    response = link(api, 8105)
    assert response.status_code == 503
    assert response.json()["code"] == "broker_unavailable"
    assert not TradingAccount.objects.exists()


def test_an_answer_for_another_login_is_422_mismatch(api, monkeypatch):
    """The terminal (outside this machine) reports another login than the one linked."""

    class OtherAccountTerminal:
        def login(self, *args, **kwargs):
            return True

        def last_error(self):
            return (mt5_api.RES_S_OK, "Success")

        def account_info(self):
            from tests.brokers.test_mt5_adapter_contract import ACCOUNT

            return mt5_api.AccountInfo(**{**ACCOUNT, "login": 999})

    monkeypatch.setattr("accounts.services.open_gateway", lambda **kw: Mt5Gateway(
        OtherAccountTerminal(), login=int(kw["login"]), password="x", server=kw["server"]))
    response = link(api, 8106)
    assert response.status_code == 422
    assert response.json()["code"] == "mismatch"
    assert not TradingAccount.objects.exists()


def test_the_same_account_cannot_be_linked_twice(api, stranger_api, sim_bridge):
    sim_bridge.add_account(8107)
    assert link(api, 8107).status_code == 201
    for client in (api, stranger_api):
        response = link(client, 8107)
        assert response.status_code == 409
        assert response.json()["code"] == "already_linked"
    assert TradingAccount.objects.count() == 1


def test_link_without_verification_touches_no_broker(api, settings):
    settings.MT5_VERIFY_ON_LINK = False
    settings.MT5_BRIDGE_URL = "http://127.0.0.1:9"  # nothing listens: a call would fail
    response = link(api, 8108)
    assert response.status_code == 201
    assert response.json()["verified_at"] is None


@pytest.mark.parametrize("payload", [
    {"login": "abc", "password": "x", "server": "s"},
    {"login": -5, "password": "x", "server": "s"},
    {"login": 2**64, "password": "x", "server": "s"},
    {"login": 1, "server": "s"},
    {"login": 1, "password": "x", "server": "s" * 101},
    {"login": 1, "password": ["x"], "server": "s"},
    {"login": 1, "password": "x" * 129, "server": "s"},
])
def test_bad_link_input_is_400_and_stores_nothing(api, payload):
    response = api.post("/api/v1/accounts", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not TradingAccount.objects.exists()


# --- list and show ---
def test_list_shows_only_my_accounts(api, member, stranger):
    mine = TradingAccountFactory(user=member)
    TradingAccountFactory(user=stranger)
    assert [a["id"] for a in api.get("/api/v1/accounts").json()] == [mine.pk]


def test_show_own_stranger_owner_missing_and_malformed(api, stranger_api, owner_api, member):
    account = TradingAccountFactory(user=member)
    url = f"/api/v1/accounts/{account.pk}"
    assert api.get(url).status_code == 200
    assert stranger_api.get(url).status_code == 404
    assert owner_api.get(url).status_code == 200  # the owner may read any member's account
    missing = api.get(f"/api/v1/accounts/{account.pk + 1000}")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    for bad in ("abc", "-1", "0", "9" * 30, "1.5"):
        response = api.get(f"/api/v1/accounts/{bad}")
        assert response.status_code == 400 and response.json()["code"] == "invalid_id"


# --- primary ---
def test_make_primary_keeps_exactly_one(api, member):
    first = TradingAccountFactory(user=member, is_primary=True)
    second = TradingAccountFactory(user=member, is_primary=False)
    response = api.put(f"/api/v1/accounts/{second.pk}/primary")
    assert response.status_code == 200 and response.json()["is_primary"] is True
    primaries = TradingAccount.objects.filter(user=member, is_primary=True)
    assert list(primaries.values_list("pk", flat=True)) == [second.pk]
    first.refresh_from_db()
    assert first.is_primary is False


def test_primary_of_another_members_account_is_404_even_for_the_owner(stranger_api, owner_api,
                                                                      member):
    account = TradingAccountFactory(user=member, is_primary=False)
    for client in (stranger_api, owner_api):
        assert client.put(f"/api/v1/accounts/{account.pk}/primary").status_code == 404
    account.refresh_from_db()
    assert account.is_primary is False


def test_the_database_refuses_two_primaries(member):
    from django.db import IntegrityError, transaction

    TradingAccountFactory(user=member, is_primary=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        TradingAccountFactory(user=member, is_primary=True)


# --- unlink ---
def test_the_only_account_cannot_be_unlinked(api, member):
    account = TradingAccountFactory(user=member)
    response = api.delete(f"/api/v1/accounts/{account.pk}")
    assert response.status_code == 409 and response.json()["code"] == "last_account"
    account.refresh_from_db()
    assert account.is_active


def test_unlinking_the_primary_promotes_another_and_keeps_history(api, member):
    primary = TradingAccountFactory(user=member, is_primary=True)
    other = TradingAccountFactory(user=member, is_primary=False)
    PositionFactory(account=primary)

    assert api.delete(f"/api/v1/accounts/{primary.pk}").status_code == 204

    primary.refresh_from_db()
    other.refresh_from_db()
    assert (primary.is_active, primary.is_primary, other.is_primary) == (False, False, True)
    assert primary.credentials_encrypted == ""  # nothing left to leak
    assert Position.objects.filter(account=primary).count() == 1  # history is kept
    assert api.get(f"/api/v1/accounts/{primary.pk}").status_code == 404
    assert [a["id"] for a in api.get("/api/v1/accounts").json()] == [other.pk]


def test_an_unlinked_account_can_be_linked_again(api, member, settings):
    settings.MT5_VERIFY_ON_LINK = False
    old = TradingAccountFactory(user=member, login="8110", server=SIM_SERVER)
    TradingAccountFactory(user=member, is_primary=False)
    assert api.delete(f"/api/v1/accounts/{old.pk}").status_code == 204
    assert link(api, 8110).status_code == 201


def test_stranger_and_owner_cannot_unlink_a_members_account(stranger_api, owner_api, member):
    account = TradingAccountFactory(user=member)
    TradingAccountFactory(user=member, is_primary=False)
    for client in (stranger_api, owner_api):
        assert client.delete(f"/api/v1/accounts/{account.pk}").status_code == 404
    account.refresh_from_db()
    assert account.is_active
