"""A sync that reads a symbol's specification again (stored more than SPEC_REFRESH ago)
notices when it differs from the stored one, stores the new one, and drops the sizing
cache of that (server, symbol) once the batch is committed (risk.symbols)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from pipeline import services
from positions.models import Instrument
from risk.symbols import _key
from tests.conftest import SIM_SERVER


@pytest.mark.django_db
def test_a_changed_specification_is_stored_and_its_cache_dropped(linked_account, sim_bridge):
    account = linked_account(7601)
    sim_bridge.sim("sim_open", 7601, "EURUSD", "buy", "0.10", magic=1, comment="t")
    assert services.accounts_sync(account_ids=[account.pk]).synced == [account.pk]
    real = Instrument.objects.get(server=SIM_SERVER, symbol="EURUSD").contract_size
    key = _key(SIM_SERVER, "EURUSD")

    # fresh and unchanged: not read again, the cache stays
    cache.set(key, {"USD": (0.0, "cached")}, timeout=60)
    outcome = services.accounts_sync(account_ids=[account.pk])
    assert outcome.specs_changed == [] and cache.get(key) is not None

    # stored long ago with another contract size: read again, noticed, cache dropped
    Instrument.objects.filter(server=SIM_SERVER, symbol="EURUSD").update(
        contract_size=real + 1, updated_at=timezone.now() - timedelta(hours=2))
    outcome = services.accounts_sync(account_ids=[account.pk])
    assert outcome.specs_changed == [(SIM_SERVER, "EURUSD")]
    assert cache.get(key) is None
    stored = Instrument.objects.get(server=SIM_SERVER, symbol="EURUSD")
    assert stored.contract_size == Decimal(real)
    assert timezone.now() - stored.updated_at < timedelta(minutes=1)

    # read again while equal to the stored one: no change, the cache stays
    cache.set(key, {"USD": (0.0, "cached")}, timeout=60)
    Instrument.objects.filter(server=SIM_SERVER, symbol="EURUSD").update(
        updated_at=timezone.now() - timedelta(hours=2))
    assert services.accounts_sync(account_ids=[account.pk]).specs_changed == []
    assert cache.get(key) is not None
