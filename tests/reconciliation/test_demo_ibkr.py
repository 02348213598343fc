"""The demo's IBKR part: demo_seed registers the IB Gateway stand-in and links its two
paper accounts; they sync through the stand-in process; the demo bot closes one GOOG
position, once, so realized P&L shows IB's figure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Terminal, TradingAccount
from pipeline.services import accounts_sync
from positions.models import Position
from reconciliation.demo import _ibkr_close_once
from tests.support.ibkr import EUR_ACCOUNT, USD_ACCOUNT, ib_stand_in

__all__ = ["ib_stand_in"]  # the fixture, imported for pytest

pytestmark = pytest.mark.django_db

PROCFILE_TRADES = ("--trade", "DU1234567:GOOG:buy:100", "--trade", "DU1234567:EURUSD:buy:20000",
                   "--trade", "DU7654321:GOOG:buy:20")


@pytest.mark.parametrize("ib_stand_in", [PROCFILE_TRADES], indirect=True)
def test_the_demo_links_two_ibkr_accounts_and_the_bot_closes_one_position(
        ib_stand_in, monkeypatch):
    monkeypatch.setenv("SIM_IB_PORT", str(ib_stand_in.process.port))
    call_command("demo_seed", members=1, terminals=1)
    call_command("demo_seed", members=1, terminals=1)  # idempotent

    terminal = Terminal.objects.get(name="ib-gateway")
    assert (terminal.kind, terminal.port) == ("ib_gateway", ib_stand_in.process.port)
    ibkr = TradingAccount.objects.filter(broker="ibkr").order_by("login")
    assert [(a.login, a.terminal_id) for a in ibkr] == [(USD_ACCOUNT, terminal.pk),
                                                        (EUR_ACCOUNT, terminal.pk)]
    outcome = accounts_sync(account_ids=[a.pk for a in ibkr])
    assert sorted(outcome.synced) == sorted(a.pk for a in ibkr)
    assert [(a.currency, a.sync_status) for a in ibkr.all()] == [("USD", "healthy"),
                                                                 ("EUR", "healthy")]
    usd = ibkr.get(login=USD_ACCOUNT)
    assert sorted(Position.objects.filter(account=usd).values_list("symbol", flat=True)) == [
        "EURUSD", "GOOG"]

    _ibkr_close_once()  # just opened: not yet
    assert sorted(ib_stand_in.holdings(USD_ACCOUNT)) == ["EURUSD", "GOOG"]
    Position.objects.filter(account=usd).update(
        opened_at=timezone.now() - timedelta(minutes=5))
    _ibkr_close_once()
    assert ib_stand_in.holdings(USD_ACCOUNT) == ["EURUSD"]
    accounts_sync(account_ids=[usd.pk])
    goog = Position.objects.get(account=usd, symbol="GOOG")
    # same bar, sold at the bid: 100 × 100.33 − 1.00 − the cost 100 × 100.36 = −4.00
    assert (goog.status, str(goog.realized_pnl)) == ("closed", "-4.00")

    _ibkr_close_once()  # once: the account has a closed position now
    assert ib_stand_in.holdings(USD_ACCOUNT) == ["EURUSD"]
    assert sorted(ib_stand_in.holdings(EUR_ACCOUNT)) == ["GOOG"]
