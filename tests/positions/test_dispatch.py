"""The dispatcher picks due accounts once; on PostgreSQL two dispatchers and two workers
running at the same time never sync one account twice at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import connection
from django.utils import timezone

from accounts.gateways import account_gateway
from accounts.models import TradingAccount
from accounts.services import trading_account_create
from positions.services import accounts_sync, sync_dispatch, sync_mark_stale


def make_accounts(user, n: int, *, login0: int = 8000) -> list[TradingAccount]:
    return [trading_account_create(user=user, broker="mt5", broker_name="x", server="S",
                                   login=str(login0 + i), password="pw") for i in range(n)]


@pytest.mark.django_db(transaction=True)
def test_due_accounts_are_enqueued_in_batches_and_not_picked_twice(member):
    make_accounts(member, 5)
    batches: list[list[int]] = []

    assert sync_dispatch(limit=100, batch_size=2, enqueue=batches.append) == 5
    assert [len(b) for b in batches] == [2, 2, 1]
    # next_sync_at moved one cadence ahead: nothing is due on the next tick
    assert sync_dispatch(limit=100, batch_size=2, enqueue=batches.append) == 0
    assert len(batches) == 3


@pytest.mark.django_db(transaction=True)
def test_inactive_and_not_yet_due_accounts_are_left_alone(member):
    active, inactive, later = make_accounts(member, 3)
    TradingAccount.objects.filter(pk=inactive.pk).update(is_active=False)
    TradingAccount.objects.filter(pk=later.pk).update(
        next_sync_at=timezone.now() + timedelta(seconds=30))
    batches: list[list[int]] = []
    sync_dispatch(limit=100, batch_size=10, enqueue=batches.append)
    assert batches == [[active.pk]]


@pytest.mark.django_db
def test_healthy_accounts_without_a_recent_sync_turn_stale(member):
    """Stale once the last good read is older than 3 × the account's own cadence."""
    fresh, old, slow = make_accounts(member, 3)
    now = timezone.now()
    TradingAccount.objects.filter(pk=fresh.pk).update(
        sync_status="healthy", last_synced_at=now - timedelta(seconds=29))  # 10 s: < 30 s
    TradingAccount.objects.filter(pk=old.pk).update(
        sync_status="healthy", last_synced_at=now - timedelta(seconds=31))  # 10 s: > 30 s
    TradingAccount.objects.filter(pk=slow.pk).update(  # 60 s cadence: fresh for 180 s
        sync_status="healthy", sync_cadence_seconds=60,
        last_synced_at=now - timedelta(seconds=120))
    assert sync_mark_stale(now=now) == 1
    old.refresh_from_db()
    assert old.sync_status == TradingAccount.SyncStatus.STALE
    assert TradingAccount.objects.filter(sync_status="healthy").count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_split_the_due_accounts(member):
    accounts = make_accounts(member, 60)
    enqueued: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def dispatcher():
        start.wait()
        try:
            for _ in range(5):
                sync_dispatch(limit=7, batch_size=3,
                              enqueue=lambda batch: (lock.acquire(), enqueued.extend(batch),
                                                     lock.release()))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    counts = Counter(enqueued)
    assert max(counts.values()) == 1  # no account enqueued twice
    assert len(counts) == len(enqueued) == min(60, 2 * 5 * 7)
    assert set(counts) <= {a.pk for a in accounts}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_sync_one_account_at_once(member, sim_bridge):
    logins = [7101, 7102, 7103]
    accounts = []
    for login in logins:
        sim_bridge.add_account(login)
        accounts.append(trading_account_create(
            user=member, broker="mt5", broker_name="Sim", server="SimBroker-Test",
            login=str(login), password=f"pw-{login}"))
    ids = [a.pk for a in accounts]
    intervals: list[tuple[int, float, float]] = []
    lock = threading.Lock()

    class Recording:
        """The real gateway, slowed down and timed, to widen any overlap."""

        def __init__(self, account):
            self.inner = account_gateway(account)
            self.account_id = account.pk

        def account_state(self):
            began = time.monotonic()
            time.sleep(0.15)
            result = self.inner.account_state()
            with lock:
                intervals.append((self.account_id, began, time.monotonic()))
            return result

        def __getattr__(self, name):
            return getattr(self.inner, name)

    start = threading.Barrier(4)
    outcomes = []

    def worker():
        start.wait()
        try:
            for _ in range(3):
                outcomes.append(accounts_sync(account_ids=ids, gateway_for=Recording))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert intervals, "no sync ran at all"
    for account_id in ids:
        spans = sorted((b, e) for a, b, e in intervals if a == account_id)
        for (_, end), (begin, _) in pairwise(spans):
            assert begin >= end, f"account {account_id} synced by two workers at once"
    synced = Counter(a for o in outcomes for a in o.synced)
    assert sum(synced.values()) == len(intervals)
    assert TradingAccount.objects.filter(pk__in=ids, sync_lease_token__isnull=False).count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_queued_account_is_not_queued_again_until_its_sync_starts(member):
    (account,) = make_accounts(member, 1)
    batches: list[list[int]] = []
    assert sync_dispatch(limit=10, batch_size=10, enqueue=batches.append) == 1
    # the cadence passes while the batch still waits in the queue
    TradingAccount.objects.filter(pk=account.pk).update(next_sync_at=timezone.now())
    assert sync_dispatch(limit=10, batch_size=10, enqueue=batches.append) == 0
    # its sync started (attempted): due again at the next cadence
    TradingAccount.objects.filter(pk=account.pk).update(last_sync_attempt_at=timezone.now())
    assert sync_dispatch(limit=10, batch_size=10, enqueue=batches.append) == 1
    # a task lost in the queue (past its expiry) does not strand the account
    TradingAccount.objects.filter(pk=account.pk).update(
        next_sync_at=timezone.now(), last_sync_attempt_at=None,
        sync_dispatched_at=timezone.now() - timedelta(seconds=61))
    assert sync_dispatch(limit=10, batch_size=10, enqueue=batches.append) == 1
