"""The API answers what its OpenAPI schema says (issue 16): schemathesis generates requests
for every operation of ``/api/schema/`` (a bounded number of examples each, valid and
invalid data) and runs all its checks on the answers: no 5xx, status codes, content types,
headers and bodies as documented, invalid data refused, valid data accepted.

The server is the project's WSGI application with seeded data (an owner, a member with a
linked account, positions, equity snapshots, a device key, an audited risk change without
a person), called in-process; the caller is signed in as the owner with a real JWT.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import schemathesis
from django.core.cache import cache
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from accounts.models import TradingAccount
from tests.factories import EquitySnapshotFactory, PositionFactory, TradingAccountFactory

MAX_EXAMPLES = 12  # per operation and generation mode (valid, invalid)
# All checks, with schemathesis's defaults, except that a schema-valid request may also be
# refused with 422: this API's documented answer for well-formed data a domain rule refuses
# (the broker refused the credentials, nothing to change, a risk % out of bounds).
CONFIG = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]}}})


@pytest.fixture
def seeded(db, owner, member, linked_account):
    from accounts.services import device_key_create
    from risk import services as risk_services

    account = linked_account(7001)  # on the simulated terminal behind a real bridge
    TradingAccount.objects.filter(pk=account.pk).update(**{
        f: getattr(TradingAccountFactory.build(), f) for f in (
            "currency", "leverage", "balance", "equity", "margin", "free_margin", "profit",
            "peak_equity", "drawdown_percent", "sync_status", "last_synced_at")})
    for _ in range(3):
        PositionFactory(account=account)
    PositionFactory(account=account, status="closed", realized_pnl=Decimal("12.50"),
                    close_reason="tp", closed_at=timezone.now())
    for _ in range(3):
        EquitySnapshotFactory(account=account)
    device_key_create(account=account, name="EA", created_by=member)
    risk_services.risk_configuration_update(changed_by=None, source="admin",
                                            fixed_risk_percent="2.00")
    return account


@pytest.fixture
def api_schema(seeded):
    from django.core import signals
    from django.db import close_old_connections

    from config.wsgi import application

    # As Django's test client does: a request's end must not close the test's connection
    # (its transaction holds the seeded rows).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    cache.clear()
    yield schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def owner_token(owner):
    from rest_framework_simplejwt.tokens import RefreshToken

    return str(RefreshToken.for_user(owner).access_token)


def _run(operation, mode, token: str, failures: list[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def check(case):
        cache.clear()  # the sign-in throttles count every attempt; each example afresh
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"})

    try:
        check()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all reported together
        failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])


@pytest.mark.django_db
def test_every_operation_conforms_to_the_schema(api_schema, owner_token):
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        for mode in GenerationMode:
            _run(operation, mode, owner_token, failures)
    assert not failures, f"{len(failures)} of {2 * len(operations)} runs failed:\n\n" + \
        "\n\n".join(failures)
