"""Linking does not reveal which logins are on the platform (issue 16): a wrong password
for a login someone else linked is 422 ``invalid_credentials``, exactly like an unlinked
login; only a caller who proved the password hears 409 ``already_linked``."""

from __future__ import annotations

import pytest

from accounts.models import TradingAccount
from tests.conftest import SIM_SERVER

pytestmark = pytest.mark.django_db


def link(client, login, password):
    return client.post("/api/v1/accounts", {"login": login, "password": password,
                                            "server": SIM_SERVER, "broker_name": "Sim"},
                       format="json")


def test_a_wrong_password_for_a_linked_login_looks_like_an_unlinked_one(api, stranger_api,
                                                                        sim_bridge):
    sim_bridge.add_account(8201)
    sim_bridge.add_account(8202)
    assert link(api, 8201, "pw-8201").status_code == 201
    linked = link(stranger_api, 8201, "wrong")
    unlinked = link(stranger_api, 8202, "wrong")
    assert (linked.status_code, unlinked.status_code) == (422, 422)
    assert linked.json() == unlinked.json()
    assert linked.json()["code"] == "invalid_credentials"


def test_the_owner_of_the_credentials_hears_already_linked(api, stranger_api, sim_bridge):
    sim_bridge.add_account(8203)
    assert link(api, 8203, "pw-8203").status_code == 201
    response = link(stranger_api, 8203, "pw-8203")
    assert response.status_code == 409 and response.json()["code"] == "already_linked"
    assert TradingAccount.objects.filter(login="8203").count() == 1
