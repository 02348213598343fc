"""Consistent account snapshots (issue 16): a read whose account figures and positions were
taken a tick apart is read again once, the pair that adds up is kept, and every good read
stores its residual (equity − balance − credit − Σ(profit + swap)) and exports it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from brokers.gateway import AccountState, BrokerPosition, Side
from positions.models import EquitySnapshot, Instrument
from positions.services import account_fetch, accounts_sync
from tests.factories import TradingAccountFactory

D = Decimal
AT = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _state(equity: str) -> AccountState:
    return AccountState(login=1, server="S", currency="USD", leverage=100,
                        balance=D("10000"), credit=D(0), profit=D(equity) - D("10000"),
                        equity=D(equity), margin=D("766.14"),
                        free_margin=D(equity) - D("766.14"), margin_level=None,
                        margin_so_call=D(100), margin_so_so=D(50), trade_allowed=True,
                        server_time=AT)


POSITION = BrokerPosition(ticket=1, symbol="EURUSD", side=Side.BUY, volume=D("7.14"),
                          price_open=D("1.07219"), price_current=D("1.07300"), sl=None,
                          tp=None, swap=D(0), profit=D("578.34"), magic=0, comment="",
                          opened_at=AT)


class SkewedTerminal:
    """The account answered one tick ahead of the positions (7.14 lots × 1 point = 7.14),
    then in step: what 15 of 48 reads showed through the bridge."""

    def __init__(self, equities: list[str]) -> None:
        self.equities = equities
        self.calls: list[str] = []

    def account_state(self) -> AccountState:
        self.calls.append("account")
        return _state(self.equities.pop(0))

    def positions(self) -> list[BrokerPosition]:
        self.calls.append("positions")
        return [POSITION]

    def deals(self, since, until=None):
        return []

    def symbol_spec(self, symbol):
        raise AssertionError("not asked: the symbol is known")


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.mark.django_db
def test_a_skewed_read_is_read_again_and_the_consistent_pair_kept():
    account = TradingAccountFactory()
    terminal = SkewedTerminal(["10585.48", "10578.34"])  # 10,000 + 578.34 = 10,578.34
    rereads = _sample("positions_account_reread_total")
    fetch = account_fetch(account=account, gateway=terminal, pending={},
                          known_symbols={"EURUSD"})
    assert terminal.calls == ["account", "positions", "account", "positions"]
    assert fetch.state.equity == D("10578.34")
    assert _sample("positions_account_reread_total") == rereads + 1


@pytest.mark.django_db
def test_a_consistent_read_is_read_once():
    account = TradingAccountFactory()
    terminal = SkewedTerminal(["10578.34"])
    account_fetch(account=account, gateway=terminal, pending={}, known_symbols={"EURUSD"})
    assert terminal.calls == ["account", "positions"]


@pytest.mark.django_db
def test_the_residual_is_stored_and_exported():
    account = TradingAccountFactory()
    Instrument.objects.create(server=account.server, symbol="EURUSD", digits=5,
                              point=D("0.00001"), contract_size=D(100000),
                              tick_size=D("0.00001"), volume_min=D("0.01"),
                              volume_step=D("0.01"), volume_max=D(100), currency_base="EUR",
                              currency_profit="USD", currency_margin="EUR", calc_mode="forex")
    terminal = SkewedTerminal(["10585.48", "10585.48"])  # skewed twice: kept, with residual
    before = _sample("positions_account_identity_residual_count")
    outcome = accounts_sync(account_ids=[account.pk], gateway_for=lambda a: terminal)
    assert outcome.synced == [account.pk]
    assert EquitySnapshot.objects.get(account=account).identity_residual == D("7.14")
    assert _sample("positions_account_identity_residual_count") == before + 1
