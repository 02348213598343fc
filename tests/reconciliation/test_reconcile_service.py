"""Reconciliation on the real database, fed by real syncs through the bridge and the
simulated terminal: each divergence is logged once when it appears and once when it
resolves; a failed read logs nothing; the log is append-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from config.append_only import AppendOnlyError
from pipeline.services import accounts_sync
from reconciliation.models import (
    ExpectedTrade,
    OpenDivergence,
    ReconciliationLog,
)
from reconciliation.services import expected_trade_register

pytestmark = pytest.mark.django_db

BOT_MAGIC = 20240101


def sync(account):
    outcome = accounts_sync(account_ids=[account.pk])
    account.refresh_from_db()
    return outcome


def logs(account, **filters):
    return list(ReconciliationLog.objects.filter(account=account, **filters)
                .values_list("kind", "event"))


def place(sim_bridge, account, trade: ExpectedTrade, *, volume: str | None = None) -> int:
    """Execute a registered trade on the simulated terminal, tag in the comment."""
    return int(sim_bridge.sim("sim_open", int(account.login), trade.symbol, trade.side,
                              volume or str(trade.volume), magic=trade.magic,
                              comment=trade.tag, sl=str(trade.sl) if trade.sl else None))


def test_a_persisting_divergence_is_logged_once_and_its_resolution_once(sim_bridge,
                                                                        linked_account):
    account = linked_account(9101)
    ticket = int(sim_bridge.sim("sim_open", 9101, "EURUSD", "buy", "0.10", magic=0))
    for _ in range(3):
        sync(account)
    assert logs(account) == [("manual", "opened")]
    assert OpenDivergence.objects.filter(account=account, kind="manual").count() == 1

    sim_bridge.sim("sim_close", 9101, ticket)
    for _ in range(2):
        sync(account)
    assert logs(account) == [("manual", "opened"), ("manual", "resolved")]
    assert not OpenDivergence.objects.filter(account=account).exists()


def test_a_matched_trade_opens_and_a_partial_fill_is_logged(sim_bridge, linked_account):
    account = linked_account(9102)
    trade = expected_trade_register(account=account, symbol="EURUSD", side="buy",
                                    volume=Decimal("0.50"), magic=BOT_MAGIC)
    ticket = place(sim_bridge, account, trade, volume="0.25")  # half filled

    sync(account)

    trade.refresh_from_db()
    assert (trade.status, trade.ticket, trade.filled_volume) == ("open", ticket,
                                                                Decimal("0.2500"))
    assert logs(account) == [("partial_fill", "opened")]


def test_a_bot_close_ends_the_trade_quietly_and_a_stop_out_is_an_event(sim_bridge,
                                                                      linked_account):
    from brokers import mt5_api

    account = linked_account(9103)
    mine = expected_trade_register(account=account, symbol="EURUSD", side="buy",
                                   volume=Decimal("0.10"), magic=BOT_MAGIC)
    other = expected_trade_register(account=account, symbol="EURUSD", side="sell",
                                    volume=Decimal("0.20"), magic=BOT_MAGIC)
    first = place(sim_bridge, account, mine)
    second = place(sim_bridge, account, other)
    sync(account)

    sim_bridge.sim("sim_close", 9103, first, reason=mt5_api.DEAL_REASON_EXPERT)
    sim_bridge.sim("sim_close", 9103, second, reason=mt5_api.DEAL_REASON_CLIENT)
    sync(account)
    sync(account)

    mine.refresh_from_db()
    other.refresh_from_db()
    assert (mine.status, mine.close_reason) == ("closed", "expert")
    assert (other.status, other.close_reason) == ("closed", "client")
    assert logs(account) == [("closed_externally", "occurred")]
    entry = ReconciliationLog.objects.get(account=account)
    assert entry.figures["reason"] == "client" and entry.expected_trade_id == other.pk


def test_a_failed_read_logs_nothing(sim_bridge, linked_account):
    account = linked_account(9104)
    trade = expected_trade_register(account=account, symbol="EURUSD", side="buy",
                                    volume=Decimal("0.10"), magic=BOT_MAGIC)
    place(sim_bridge, account, trade)
    sync(account)
    assert logs(account) == []

    sim_bridge.sim("sim_inject_fault", "none", method="positions_get")
    outcome = sync(account)

    assert outcome.failed == [account.pk]
    assert logs(account) == []  # unknown is not flat: no "missing"
    trade.refresh_from_db()
    assert trade.status == "open"


def test_missing_fill_is_logged_after_the_grace(sim_bridge, linked_account, settings):
    from datetime import timedelta

    from django.utils import timezone

    account = linked_account(9105)
    trade = expected_trade_register(account=account, symbol="EURUSD", side="sell",
                                    volume=Decimal("0.10"), magic=BOT_MAGIC)
    sync(account)
    assert logs(account) == []  # young: the order may still be on its way
    ExpectedTrade.objects.filter(pk=trade.pk).update(
        created_at=timezone.now() - timedelta(minutes=5))
    sync(account)
    sync(account)
    assert logs(account) == [("missing", "opened")]


def test_registration_is_idempotent_per_approved_entry(linked_account, sim_bridge):
    account = linked_account(9106)
    first = expected_trade_register(account=account, symbol="EURUSD", side="buy",
                                    volume=Decimal("0.10"), approval_ref="A-1",
                                    entry_number=2)
    again = expected_trade_register(account=account, symbol="EURUSD", side="buy",
                                    volume=Decimal("0.10"), approval_ref="A-1",
                                    entry_number=2)
    assert first.pk == again.pk
    assert first.tag.startswith("bo-") and len(first.tag) <= 26


# --- append-only ---
def make_log(member):
    from tests.factories import TradingAccountFactory

    account = TradingAccountFactory(user=member)
    from django.utils import timezone

    return ReconciliationLog.objects.create(account=account, kind="manual", event="opened",
                                            key="manual:t1", ticket=1, created_at=timezone.now())


def test_the_model_refuses_updates_and_deletes(member):
    entry = make_log(member)
    entry.event = "resolved"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        ReconciliationLog.objects.filter(pk=entry.pk).update(event="resolved")
    with pytest.raises(AppendOnlyError):
        ReconciliationLog.objects.all().delete()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the row is committed before the TRUNCATE
@pytest.mark.parametrize("sql", [
    "UPDATE reconciliation_reconciliationlog SET event = 'resolved'",
    "DELETE FROM reconciliation_reconciliationlog",
    "TRUNCATE reconciliation_reconciliationlog CASCADE",
])
def test_postgres_refuses_update_delete_truncate(member, sql):
    entry = make_log(member)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(sql)
    assert ReconciliationLog.objects.filter(pk=entry.pk, event="opened").exists()
