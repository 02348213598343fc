"""The fleet of terminals: sticky balanced assignment, failover of a failing terminal's
accounts, batches of one terminal, and on PostgreSQL two workers never using one terminal
at once (each MetaTrader 5 terminal is logged into one account at a time)."""

from __future__ import annotations

import threading
import time
from itertools import groupby

import pytest
from django.db import connection

from accounts.gateways import account_gateway
from accounts.models import Terminal, TradingAccount
from accounts.services import trading_account_create
from accounts.terminals import (
    terminal_assign,
    terminal_lease_acquire,
    terminal_lease_release,
    terminals_rebalance,
)
from pipeline import services as pipeline
from positions.services import sync_dispatch
from tests.conftest import SIM_SERVER, start_bridge


def _account(user, login: int, *, server: str = SIM_SERVER, terminal=None) -> TradingAccount:
    return trading_account_create(user=user, broker="mt5", broker_name="Sim", server=server,
                                  login=str(login), password=f"pw-{login}", terminal=terminal)


@pytest.mark.django_db
def test_new_accounts_are_balanced_by_free_capacity_and_stay_put(member):
    big = Terminal.objects.create(name="big", url="http://127.0.0.1:1", capacity=4)
    small = Terminal.objects.create(name="small", url="http://127.0.0.1:2", capacity=2)
    accounts = [_account(member, 100 + i) for i in range(6)]
    assert terminals_rebalance() == 6
    held = {t.name: t.accounts.count() for t in (big, small)}
    assert held == {"big": 4, "small": 2}  # free capacity 4:2, filled to the brim
    # sticky: a healthy terminal keeps its accounts, even when another has more room now
    Terminal.objects.filter(pk=small.pk).update(capacity=100)
    assert terminals_rebalance() == 0
    account = TradingAccount.objects.select_related("terminal").get(pk=accounts[0].pk)
    before = account.terminal_id
    assert terminal_assign(account=account).pk == before


@pytest.mark.django_db
def test_assignment_respects_kind_and_servers(member):
    Terminal.objects.create(name="other-server", url="http://127.0.0.1:1",
                            servers=["Elsewhere-Live"])
    Terminal.objects.create(name="ib", kind="ib_gateway", host="127.0.0.1", port=4002)
    account = _account(member, 200)
    assert terminals_rebalance() == 0  # nothing serves mt5 at SIM_SERVER
    assert TradingAccount.objects.get(pk=account.pk).terminal_id is None
    fits = Terminal.objects.create(name="fits", url="http://127.0.0.1:3", servers=[SIM_SERVER])
    assert terminals_rebalance() == 1
    assert TradingAccount.objects.get(pk=account.pk).terminal_id == fits.pk


@pytest.mark.django_db
def test_a_failing_terminals_accounts_move_to_a_healthy_one(member, sim_bridge, settings):
    settings.TERMINAL_FAILOVER_FAILURES = 3
    dead = Terminal.objects.create(name="dead", url="http://127.0.0.1:9")  # nothing listens
    alive = Terminal.objects.create(name="alive", url=sim_bridge.url, capacity=10)
    logins = [7301, 7302, 7303]
    for login in logins:
        sim_bridge.add_account(login)
    ids = [_account(member, login, terminal=dead).pk for login in logins]

    first = pipeline.accounts_sync(account_ids=ids)
    assert sorted(first.failed) == sorted(ids)  # unknown, never flat
    dead.refresh_from_db()
    assert dead.consecutive_failures == 3 and dead.last_error
    assert terminals_rebalance() == 3
    assert set(TradingAccount.objects.filter(pk__in=ids).values_list(
        "terminal_id", flat=True)) == {alive.pk}

    second = pipeline.accounts_sync(account_ids=ids)
    assert sorted(second.synced) == sorted(ids)
    alive.refresh_from_db()
    assert alive.consecutive_failures == 0 and alive.last_ok_at is not None
    assert alive.lease_token is None  # released after each call sequence


@pytest.mark.django_db(transaction=True)  # batches are enqueued on commit
def test_a_sync_batch_never_mixes_terminals(member):
    one = Terminal.objects.create(name="one", url="http://127.0.0.1:1")
    two = Terminal.objects.create(name="two", url="http://127.0.0.1:2")
    for i in range(7):
        _account(member, 300 + i, terminal=one if i % 2 else two)
    batches: list[list[int]] = []
    assert sync_dispatch(limit=100, batch_size=3, enqueue=batches.append) == 7
    assert batches, "nothing dispatched"
    order = []
    for batch in batches:
        terminals = set(TradingAccount.objects.filter(pk__in=batch)
                        .values_list("terminal_id", flat=True))
        assert len(terminals) == 1, f"batch {batch} mixes terminals {terminals}"
        order.extend(terminals)
    # queued round-robin: the workers spread over the terminals (4 + 3 accounts by 3)
    assert len(order) == 3 and order[0] != order[1] and order[0] == order[2]
    assert sorted(a for b in batches for a in b) == sorted(
        TradingAccount.objects.values_list("id", flat=True))


@pytest.mark.django_db
def test_an_expired_lease_is_taken_over_and_a_routine_read_yields_to_a_priority_one(member):
    terminal = Terminal.objects.create(name="t", url="http://127.0.0.1:1")
    token = terminal_lease_acquire(terminal_id=terminal.pk, seconds=30)
    assert token is not None
    assert terminal_lease_acquire(terminal_id=terminal.pk) is None  # held
    Terminal.objects.filter(pk=terminal.pk).update(lease_until="2000-01-01T00:00:00Z")
    second = terminal_lease_acquire(terminal_id=terminal.pk)  # a killed worker's lease
    assert second is not None and second != token
    terminal_lease_release(terminal_id=terminal.pk, token=token, ok=True, seconds=0.1)
    assert Terminal.objects.get(pk=terminal.pk).lease_token == second  # not the old holder's
    terminal_lease_release(terminal_id=terminal.pk, token=second, ok=True, seconds=0.1)
    Terminal.objects.filter(pk=terminal.pk).update(priority_until="2999-01-01T00:00:00Z")
    assert terminal_lease_acquire(terminal_id=terminal.pk) is None
    assert terminal_lease_acquire(terminal_id=terminal.pk, priority=True) is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_use_one_terminal_at_once(member, sim_bridge, settings):
    """Two threads, each with its own PostgreSQL connection, sync disjoint batches whose
    accounts share two terminals, 15 times. Every gateway call is logged with its
    terminal, account and time: on one terminal no two calls overlap, and each account's
    calls in a round form one unbroken run (no other account's call slips between its
    login and its reads)."""
    other = start_bridge(settings.MT5_BRIDGE_TOKEN)
    try:
        terminals = [Terminal.objects.create(name="t1", url=sim_bridge.url),
                     Terminal.objects.create(name="t2", url=other.url)]
        ids: list[list[int]] = [[], []]
        for i in range(8):
            login = 7400 + i
            bridge = sim_bridge if i % 2 == 0 else other
            bridge.add_account(login)
            account = _account(member, login, terminal=terminals[i % 2])
            ids[i // 4].append(account.pk)  # each worker: two accounts on each terminal
        log: list[tuple[int, int, int, float, float]] = []  # round, terminal, account, t0, t1
        lock = threading.Lock()
        in_use: dict[int, int] = {}
        overlaps: list[str] = []
        current = {"round": 0}

        class Recording:
            """The real gateway; each call is timed and counted per terminal."""

            def __init__(self, account):
                self.inner = account_gateway(account)
                self.account_id, self.terminal_id = account.pk, account.terminal_id

            def __getattr__(self, name):
                method = getattr(self.inner, name)

                def call(*args, **kwargs):
                    with lock:
                        in_use[self.terminal_id] = in_use.get(self.terminal_id, 0) + 1
                        if in_use[self.terminal_id] > 1:
                            overlaps.append(f"{name} of {self.account_id}")
                    began = time.monotonic()
                    try:
                        time.sleep(0.002)  # widen any overlap
                        return method(*args, **kwargs)
                    finally:
                        with lock:
                            in_use[self.terminal_id] -= 1
                            log.append((current["round"], self.terminal_id, self.account_id,
                                        began, time.monotonic()))
                return call

        for n in range(15):
            current["round"] = n
            start = threading.Barrier(2)
            outcomes = []

            def worker(batch, start=start, outcomes=outcomes):
                start.wait()
                try:
                    outcomes.append(pipeline.accounts_sync(account_ids=batch,
                                                           gateway_for=Recording))
                finally:
                    connection.close()

            threads = [threading.Thread(target=worker, args=(batch,)) for batch in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(a for o in outcomes for a in o.synced) == sorted(ids[0] + ids[1])

        assert not overlaps, f"two calls on one terminal at once: {overlaps[:5]}"
        for (round_, terminal_id), calls in groupby(
                sorted(log, key=lambda c: (c[0], c[1], c[3])), key=lambda c: (c[0], c[1])):
            runs = [account for account, _ in groupby(c[2] for c in calls)]
            assert len(runs) == len(set(runs)), (
                f"round {round_}: terminal {terminal_id} switched between accounts mid-"
                f"sequence: {runs}")
        assert not Terminal.objects.filter(lease_token__isnull=False).exists()
    finally:
        other.process.terminate()
        other.process.wait(timeout=10)


@pytest.mark.django_db
def test_a_new_link_is_verified_through_and_assigned_to_the_terminal_with_most_room(
        member, sim_bridge, settings):
    from accounts.services import account_link

    settings.MT5_VERIFY_ON_LINK = True
    Terminal.objects.create(name="full-ish", url="http://127.0.0.1:9", capacity=1)
    roomy = Terminal.objects.create(name="roomy", url=sim_bridge.url, capacity=10)
    sim_bridge.add_account(7701)
    account = account_link(user=member, login=7701, password="pw-7701", server=SIM_SERVER)
    assert account.terminal_id == roomy.pk  # verified through it: the other one is dead
    assert account.verified_at is not None


@pytest.mark.django_db
def test_healthz_and_metrics_show_each_terminal_without_its_secrets(client, settings):
    from django.utils import timezone

    settings.TERMINAL_FAILOVER_FAILURES = 3
    Terminal.objects.create(name="up-one", url="http://10.0.0.5:8765", token_env="SECRET_T",
                            last_ok_at=timezone.now(), latency_ms=12)
    Terminal.objects.create(name="down-one", url="http://10.0.0.6:8765",
                            consecutive_failures=3)
    response = client.get("/healthz")
    body = response.json()
    terminals = {t["name"]: t for t in body["terminals"]}
    assert terminals["up-one"]["up"] is True and terminals["up-one"]["latency_ms"] == 12
    assert terminals["down-one"]["up"] is False
    assert terminals["down-one"]["consecutive_failures"] == 3
    assert body["checks"]["terminals"] == "ok"  # one is up
    assert "10.0.0.5" not in response.content.decode()
    assert "SECRET_T" not in response.content.decode()

    page = client.get("/metrics").content.decode()
    assert 'mt5_terminal_up{terminal="up-one"} 1.0' in page
    assert 'mt5_terminal_up{terminal="down-one"} 0.0' in page

    Terminal.objects.filter(name="up-one").update(enabled=False)
    body = client.get("/healthz").json()
    assert "terminals" in body["failing"] and body["checks"]["terminals"] == "failing"
