"""Linking an Interactive Brokers account: POST /api/v1/accounts with broker "ibkr", the
account id and its IB Gateway (a Terminal of kind ib_gateway), verified against the real
IB Gateway stand-in process's managed accounts. No password anywhere."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.gateways import account_gateway, ib_client_id
from accounts.models import Terminal, TradingAccount
from brokers.errors import BrokerUnavailable
from tests.factories import TradingAccountFactory
from tests.support.ibkr import EUR_ACCOUNT, USD_ACCOUNT, closed_port, ib_stand_in

__all__ = ["ib_stand_in"]  # the fixture, imported for pytest

pytestmark = pytest.mark.django_db

URL = "/api/v1/accounts"


def test_an_ibkr_account_links_verified_through_its_gateway(api, member, ib_stand_in):
    answer = api.post(URL, {"broker": "ibkr", "account_id": EUR_ACCOUNT, "gateway": "ib-1"},
                      format="json")

    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["broker"], body["login"], body["server"]) == ("ibkr", EUR_ACCOUNT,
                                                               EUR_ACCOUNT)
    assert body["currency"] == "EUR" and body["verified_at"] is not None
    assert body["read_only"] is False and body["is_primary"] is True
    account = TradingAccount.objects.get(pk=body["id"])
    assert account.terminal == ib_stand_in.terminal
    assert account.credentials_encrypted == ""  # IB Gateway holds the login
    assert account.broker_name == "Interactive Brokers"


def test_the_only_gateway_serving_the_id_is_chosen_when_none_is_named(api, ib_stand_in):
    Terminal.objects.create(name="ib-other", kind=Terminal.Kind.IB_GATEWAY,
                            host="127.0.0.1", port=closed_port(), servers=["U0000001"])
    Terminal.objects.filter(pk=ib_stand_in.terminal.pk).update(servers=[USD_ACCOUNT])

    answer = api.post(URL, {"broker": "ibkr", "account_id": USD_ACCOUNT, "read_only": True},
                      format="json")

    assert answer.status_code == 201, answer.json()
    account = TradingAccount.objects.get(pk=answer.json()["id"])
    assert account.terminal_id == ib_stand_in.terminal.pk
    assert account.credentials_read_only and answer.json()["read_only"] is True
    assert account.currency == "USD"


def test_an_id_the_gateway_does_not_manage_is_invalid_credentials(api, ib_stand_in):
    answer = api.post(URL, {"broker": "ibkr", "account_id": "DU9999999", "gateway": "ib-1"},
                      format="json")

    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_credentials"
    assert not TradingAccount.objects.exists()


def test_a_gateway_that_does_not_answer_is_503_and_nothing_is_stored(api):
    Terminal.objects.create(name="ib-down", kind=Terminal.Kind.IB_GATEWAY, host="127.0.0.1",
                            port=closed_port(), client_id=7)

    answer = api.post(URL, {"broker": "ibkr", "account_id": USD_ACCOUNT, "gateway": "ib-down"},
                      format="json")

    assert answer.status_code == 503
    assert answer.json()["code"] == "broker_unavailable"
    assert not TradingAccount.objects.exists()


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"broker": "ibkr", "account_id": "12345"}, 400, None, "account_id"),
    ({"broker": "ibkr", "account_id": "DU1234567; drop"}, 400, None, "account_id"),
    ({"broker": "ibkr"}, 400, None, "account_id"),
    ({"broker": "ibkr", "account_id": "DU1234567", "gateway": "nope"}, 422,
     "unknown_gateway", None),
    ({"broker": "ibkr", "account_id": "DU1234567"}, 422, "unknown_gateway", None),
    ({"broker": "ftx", "account_id": "DU1234567"}, 400, None, "broker"),
    ({"password": "x", "server": "S"}, 400, None, "login"),  # mt5 still needs its login
])
def test_bad_ibkr_link_input_names_the_problem_and_stores_nothing(api, body, status, code,
                                                                  field):
    answer = api.post(URL, body, format="json")

    assert answer.status_code == status, answer.json()
    if code:
        assert answer.json()["code"] == code
    if field:
        assert field in str(answer.json()["detail"])
    assert not TradingAccount.objects.exists()


def test_several_gateways_for_the_id_ask_for_a_name(api):
    for name in ("ib-a", "ib-b"):
        Terminal.objects.create(name=name, kind=Terminal.Kind.IB_GATEWAY, host="127.0.0.1",
                                port=closed_port())

    answer = api.post(URL, {"broker": "ibkr", "account_id": USD_ACCOUNT}, format="json")

    assert answer.status_code == 422 and answer.json()["code"] == "gateway_required"
    assert not TradingAccount.objects.exists()


def test_the_same_id_twice_is_already_linked_after_verification(api, stranger_api,
                                                                 ib_stand_in):
    body = {"broker": "ibkr", "account_id": USD_ACCOUNT, "gateway": "ib-1"}
    assert api.post(URL, body, format="json").status_code == 201

    answer = stranger_api.post(URL, body, format="json")

    assert answer.status_code == 409 and answer.json()["code"] == "already_linked"
    assert TradingAccount.objects.count() == 1


def test_a_stranger_cannot_see_an_ibkr_account(api, stranger_api, ib_stand_in):
    body = {"broker": "ibkr", "account_id": USD_ACCOUNT, "gateway": "ib-1"}
    account_id = api.post(URL, body, format="json").json()["id"]

    for path in (f"{URL}/{account_id}", f"{URL}/{account_id}/positions",
                 f"{URL}/{account_id}/summary"):
        assert stranger_api.get(path).status_code == 404
        assert api.get(path).status_code == 200


# --- an account without credentials ------------------------------------------------------
def test_an_ibkr_account_has_a_gateway_without_any_password(member, settings):
    settings.IB_CLIENT_ID_OFFSET = 5_000_000
    terminal = Terminal.objects.create(name="ib-1", kind=Terminal.Kind.IB_GATEWAY,
                                       host="10.0.0.9", port=4002, client_id=100)
    account = TradingAccountFactory(user=member, broker="ibkr", login=USD_ACCOUNT,
                                    server=USD_ACCOUNT, credentials_encrypted="",
                                    terminal=terminal)

    gateway = account_gateway(account)

    # clientId: the terminal's 100 + this machine's offset + this process's id
    assert ib_client_id(terminal) == 5_000_100 + __import__("os").getpid()
    assert (gateway.host, gateway.port, gateway.account_id) == ("10.0.0.9", 4002,
                                                                USD_ACCOUNT)
    assert gateway.client_id == ib_client_id(terminal)


def test_an_ibkr_account_without_a_gateway_reads_as_unavailable(member):
    account = TradingAccountFactory(user=member, broker="ibkr", login=USD_ACCOUNT,
                                    server=USD_ACCOUNT, credentials_encrypted="")

    with pytest.raises(BrokerUnavailable, match="no IB Gateway"):
        account_gateway(account).account_state()
    with pytest.raises(BrokerUnavailable):
        account_gateway(account).positions()


def test_rotating_credentials_skips_an_account_without_any(member):
    TradingAccountFactory(user=member, broker="ibkr", login=USD_ACCOUNT, server=USD_ACCOUNT,
                          credentials_encrypted="")
    mt5 = TradingAccountFactory(user=member, is_primary=False)
    before = mt5.credentials_encrypted

    call_command("rotate_credentials")

    assert TradingAccount.objects.get(broker="ibkr").credentials_encrypted == ""
    assert TradingAccount.objects.get(pk=mt5.pk).credentials_encrypted != before


def test_the_admin_shows_an_ibkr_account(admin_client, member):
    account = TradingAccountFactory(user=member, broker="ibkr", login=USD_ACCOUNT,
                                    server=USD_ACCOUNT, credentials_encrypted="",
                                    balance=Decimal("89964.00"), currency="USD")
    listing = admin_client.get("/admin/accounts/tradingaccount/")
    page = admin_client.get(f"/admin/accounts/tradingaccount/{account.pk}/change/")

    assert listing.status_code == 200 and USD_ACCOUNT in listing.content.decode()
    assert page.status_code == 200 and "Interactive Brokers" in page.content.decode()
