"""POST /api/v1/risk/position-size: a constant, small number of SQL statements per request;
the symbol's specification cached per (server, symbol, account currency) and dropped by
``symbol_spec_cache_invalidate``; the setup's entries registered in one INSERT."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from brokers.gateway import Side
from guards.models import AccountGuardState, PlatformState
from positions.services import accounts_sync
from reconciliation.models import ExpectedTrade
from reconciliation.services import expected_trades_register
from risk import selectors, symbols
from tests.conftest import SIM_SERVER

pytestmark = pytest.mark.django_db
PATH = "/api/v1/risk/position-size"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def synced(linked_account, login, **kwargs):
    account = linked_account(login, **kwargs)
    accounts_sync(account_ids=[account.pk])
    account.refresh_from_db()
    assert account.sync_status == "healthy"
    return account


def payload(account, sim_bridge, signal: str) -> dict:
    _, ask = (Decimal(str(x)) for x in sim_bridge.sim("sim_quote", "EURUSD"))
    return {"account_id": account.pk, "signal_id": signal, "instrument": "EURUSD",
            "side": "buy", "entry_price": str(ask),
            "stop_loss": str(ask - 500 * Decimal("0.00001"))}


class CountingGateway:
    """Wraps a gateway and counts its symbol_spec calls (the bridge round trips)."""

    calls: list[str] = []

    def __init__(self, inner) -> None:
        self.inner = inner

    def symbol_spec(self, symbol):
        CountingGateway.calls.append(symbol)
        return self.inner.symbol_spec(symbol)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def counted(monkeypatch):
    import accounts.gateways

    real = accounts.gateways.account_gateway
    CountingGateway.calls = []
    monkeypatch.setattr(accounts.gateways, "account_gateway",
                        lambda account: CountingGateway(real(account)))
    return CountingGateway.calls


def test_one_sizing_request_costs_a_constant_few_statements(api, sim_bridge, linked_account,
                                                            django_assert_num_queries):
    account = synced(linked_account, 9401)
    PlatformState.objects.get_or_create(pk=1)
    api.post(PATH, payload(account, sim_bridge, "warm-up"), format="json")  # caches warm
    # 1 the JWT's user; 2 the account with its credentials, guard state and the kill
    # switch (risk.selectors.account_for_sizing); 3 SAVEPOINT (the test's transaction
    # makes the service's atomic block a savepoint); 4 INSERT the risk log; 5 INSERT the
    # three expected trades; 6 SELECT their tags; 7 RELEASE SAVEPOINT. The risk
    # configuration and the symbol's specification come from the cache.
    with django_assert_num_queries(7):
        body = api.post(PATH, payload(account, sim_bridge, "S-7"), format="json").json()
    assert body["setup_approved"] is True, body
    assert len(body["expected_trades"]) == 3


def test_the_entries_are_registered_in_one_insert(api, sim_bridge, linked_account):
    account = synced(linked_account, 9402)
    api.post(PATH, payload(account, sim_bridge, "warm-up"), format="json")
    with CaptureQueriesContext(connection) as queries:
        body = api.post(PATH, payload(account, sim_bridge, "S-8"), format="json").json()
    inserts = [q["sql"] for q in queries.captured_queries
               if q["sql"].startswith('INSERT INTO "reconciliation_expectedtrade"')]
    assert len(inserts) == 1
    trades = list(ExpectedTrade.objects.filter(account=account, approval_ref="signal:S-8")
                  .order_by("entry_number"))
    assert [t.tag for t in trades] == body["expected_trades"]
    assert [t.volume for t in trades] == [Decimal("0.3"), Decimal("0.21"), Decimal("0.09")]


def test_the_account_is_read_in_one_query_with_credentials_and_state(member, linked_account,
                                                                     sim_bridge):
    account = linked_account(9403)
    AccountGuardState.objects.create(account=account, trading_blocked=True)
    PlatformState.objects.update_or_create(pk=1, defaults={"state": "reducing"})
    with CaptureQueriesContext(connection) as queries:
        read = selectors.account_for_sizing(user=member, account_id=account.pk)
        assert read is not None
        assert read.credentials_encrypted  # not deferred
        assert read.guard_state.trading_blocked is True
        assert read.platform_state == "reducing"
    assert len(queries.captured_queries) == 1


def test_a_stranger_gets_no_account(stranger, linked_account, sim_bridge):
    account = linked_account(9404)
    assert selectors.account_for_sizing(user=stranger, account_id=account.pk) is None


def test_a_blocked_account_is_refused_from_the_joined_state(api, sim_bridge, linked_account):
    account = synced(linked_account, 9405)
    AccountGuardState.objects.update_or_create(account=account,
                                               defaults={"trading_blocked": True})
    body = api.post(PATH, payload(account, sim_bridge, "S-9"), format="json").json()
    assert body["rejection_reason"] == "trading_blocked"
    PlatformState.objects.update_or_create(pk=1, defaults={"state": "halted"})
    body = api.post(PATH, payload(account, sim_bridge, "S-10"), format="json").json()
    assert body["rejection_reason"] == "platform_not_active"


def test_the_symbol_spec_is_read_once_per_server_symbol_and_currency(
        api, sim_bridge, linked_account, counted):
    usd = synced(linked_account, 9406)
    other_usd = synced(linked_account, 9407)
    eur = synced(linked_account, 9408, currency="EUR")
    for n, account in enumerate([usd, other_usd, usd, eur, eur]):
        body = api.post(PATH, payload(account, sim_bridge, f"S-{n}"), format="json").json()
        assert body["setup_approved"] is True, body
    # one read for USD accounts at SimBroker-Test, one for EUR ones: tick values differ
    assert counted == ["EURUSD", "EURUSD"]

    symbols.symbol_spec_cache_invalidate(SIM_SERVER, "EURUSD")
    for n, account in enumerate([usd, eur]):
        api.post(PATH, payload(account, sim_bridge, f"T-{n}"), format="json")
    assert counted == ["EURUSD"] * 4  # both currencies read again after the invalidation


def test_a_cached_spec_expires_after_its_ttl(api, sim_bridge, linked_account, counted,
                                              monkeypatch):
    account = synced(linked_account, 9409)
    now = [1_000_000.0]
    monkeypatch.setattr(symbols.time, "time", lambda: now[0])
    api.post(PATH, payload(account, sim_bridge, "U-1"), format="json")
    now[0] += symbols.SYMBOL_SPEC_TTL_SECONDS - 0.5  # still fresh
    api.post(PATH, payload(account, sim_bridge, "U-2"), format="json")
    assert len(counted) == 1
    now[0] += 1.0  # now older than the TTL
    api.post(PATH, payload(account, sim_bridge, "U-3"), format="json")
    assert len(counted) == 2


def test_batch_registration_is_idempotent_per_approval(linked_account, sim_bridge):
    account = linked_account(9410)
    entries = [(1, Decimal("0.30")), (2, Decimal("0.21")), (3, Decimal("0.09"))]
    first = expected_trades_register(account=account, symbol="EURUSD", side=Side.BUY,
                                     entries=entries, approval_ref="signal:X",
                                     platform_checked=True)
    again = expected_trades_register(account=account, symbol="EURUSD", side=Side.BUY,
                                     entries=entries, approval_ref="signal:X",
                                     platform_checked=True)
    assert [t.pk for t in again] == [t.pk for t in first]
    assert [t.entry_number for t in first] == [1, 2, 3]
    assert ExpectedTrade.objects.filter(account=account).count() == 3
    with pytest.raises(ValueError, match="approval_ref"):
        expected_trades_register(account=account, symbol="EURUSD", side=Side.BUY,
                                 entries=entries, approval_ref="", platform_checked=True)


def test_batch_registration_redraws_a_colliding_tag(linked_account, sim_bridge, monkeypatch):
    account = linked_account(9411)
    taken = ExpectedTrade.objects.create(account=account, symbol="EURUSD", side="buy",
                                         volume=Decimal("0.01"), magic=1, tag="bo-taken00001")
    from reconciliation import services

    draws = iter(["bo-taken00001", "bo-fresh00002", "bo-fresh00003"])
    monkeypatch.setattr(services.matching, "make_tag", lambda _: next(draws))
    trades = expected_trades_register(
        account=account, symbol="EURUSD", side=Side.BUY, approval_ref="signal:Y",
        entries=[(1, Decimal("0.10")), (2, Decimal("0.20"))], platform_checked=True)
    # entry 1 collided with ``taken``: skipped by the INSERT, then registered alone
    assert [t.tag for t in trades] == ["bo-fresh00003", "bo-fresh00002"]
    assert taken.tag not in {t.tag for t in trades}
