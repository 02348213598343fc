import json

import pytest

from positions import services
from tests.conftest import api_client_for


@pytest.mark.django_db(transaction=True)
def test_dump(member, sim_bridge, linked_account):
    account = linked_account(9601)
    linked_account(9602, currency="EUR")
    sim_bridge.sim("sim_open", 9601, "EURUSD", "buy", "0.10", magic=1)
    sim_bridge.sim("sim_open", 9601, "EURUSD", "sell", "0.20", magic=1)
    services.accounts_sync(account_ids=[account.pk])
    sim_bridge.sim("sim_advance", 3)
    services.accounts_sync(account_ids=[account.pk])
    api = api_client_for(member)
    out = {}
    for url in ["/api/v1/accounts", f"/api/v1/accounts/{account.pk}/positions",
                f"/api/v1/accounts/{account.pk}/equity?points=200", "/api/v1/guards"]:
        out[url] = api.get(url).json()
    with open("/tmp/mini/dump.json", "w") as f:
        json.dump(out, f, indent=1)
