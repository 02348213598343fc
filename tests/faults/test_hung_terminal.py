"""A hung terminal never makes a batch write nothing: the batch stops reading after two
timeouts in a row or its deadline, and writes every account (the ones not read as stale,
their figures kept) well inside the task's time limit. Through a real bridge process,
stopped with SIGSTOP as the fault probe did."""

from __future__ import annotations

import signal
import time

import pytest

from accounts.models import TradingAccount
from positions.models import SyncLog
from positions.services import accounts_sync
from tests.faults.conftest import assert_invariants

pytestmark = pytest.mark.django_db


def test_a_hung_terminal_fails_the_batch_fast_and_writes_every_account(
        sim_bridge, linked_account):
    accounts = [linked_account(7500 + i) for i in range(5)]
    ids = [a.pk for a in accounts]
    assert len(accounts_sync(account_ids=ids).synced) == 5
    sim_bridge.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        outcome = accounts_sync(account_ids=ids)
        took = time.monotonic() - started
    finally:
        sim_bridge.process.send_signal(signal.SIGCONT)

    # two timeouts of 3 + 2 s each (MT5_CONNECTION_TIMEOUT = 3 in the fixture), then the
    # other three are not asked at all: about 10 s, not 5 × 5 s
    assert took < 16, took
    assert sorted(outcome.failed) == sorted(ids)
    codes = sorted(SyncLog.objects.filter(result="failed").values_list("error_code",
                                                                       flat=True))
    assert codes == ["broker_timeout"] * 2 + ["terminal_unresponsive"] * 3
    assert set(TradingAccount.objects.values_list("sync_status", flat=True)) == {"stale"}
    assert all(a.equity is not None for a in TradingAccount.objects.all())  # figures kept
    # the terminal is back: the next cycle heals every account
    assert len(accounts_sync(account_ids=ids).synced) == 5
    assert_invariants(sim_bridge=sim_bridge, logins=[7500 + i for i in range(5)],
                      positions_before=0)


def test_a_slow_batch_stops_at_its_deadline_and_writes_what_it_has(
        sim_bridge, linked_account):
    accounts = [linked_account(7510 + i) for i in range(4)]
    ids = [a.pk for a in accounts]
    # each account read takes 1.5 s at the terminal: a 2 s deadline reads two of them
    sim_bridge.sim("sim_inject_fault", "delay", method="account_info", count=4, delay=1.5)
    outcome = accounts_sync(account_ids=ids, deadline=2.0)

    assert len(outcome.synced) == 2
    assert sorted(SyncLog.objects.filter(result="failed").values_list(
        "error_code", flat=True)) == ["batch_deadline"] * 2
