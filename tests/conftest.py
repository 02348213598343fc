"""Shared fixtures: users (owner, member, stranger), a real simulated terminal behind a
real bridge process, and accounts linked to it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from brokers.bridge.client import BridgeTerminal
from tests.support.processes import bridge_start

ROOT = Path(__file__).resolve().parent.parent
SIM_SERVER = "SimBroker-Test"
IN_CI = os.environ.get("CI") == "true"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "postgres" in item.keywords:
            item.fixturenames.append("_require_postgres")


@pytest.fixture
def _require_postgres(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("CI=true: this test needs PostgreSQL (set DATABASE_URL)")
        pytest.skip("needs PostgreSQL: run scripts/test with PostgreSQL on 127.0.0.1:5432")


@pytest.fixture(autouse=True)
def _append_only_triggers_on(request):
    """Keep PostgreSQL's append-only triggers live during each test, and let the harness
    empty its scratch database afterwards (Django's flush is a TRUNCATE, which the
    reconciliation log's trigger refuses): ``session_replication_role = replica`` makes
    this superuser session skip ordinary triggers for the flush only."""
    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    request.getfixturevalue("_django_db_helper")
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")
    yield
    if connection.connection is not None and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")


@dataclass
class SimBridge:
    """A ``--sim`` bridge process with a manual clock: prices move only by advance()."""

    url: str
    token: str
    process: subprocess.Popen

    def admin(self, timeout: float = 10.0) -> BridgeTerminal:
        return BridgeTerminal(self.url, self.token, timeout=timeout)

    def sim(self, name: str, /, *args, **kwargs):
        return self.admin().sim(name, *args, **kwargs)

    def admin_deals(self, login: int) -> tuple:
        """Every deal of a test account (logged in with its test password)."""
        terminal = self.admin()
        assert terminal.login(login, password=f"pw-{login}", server=SIM_SERVER)
        return terminal.history_deals_get(0, 2**31 - 1) or ()

    def add_account(self, login: int, *, currency: str = "USD", leverage: int = 100,
                    balance: str = "10000", server: str = SIM_SERVER) -> None:
        assert self.sim("sim_create_account", login, f"pw-{login}", f"view-{login}", server,
                        currency, leverage, balance) is True


def start_bridge(token: str, *extra: str) -> SimBridge:
    """A ``--sim --manual-clock`` bridge with instant login switches (``extra`` may set
    ``--login-ms`` again). Raises BridgeDidNotStart."""
    process, url = bridge_start("--login-ms", "0", *extra, token=token)
    return SimBridge(url=url, token=token, process=process)


@pytest.fixture
def sim_bridge(settings):
    """A fresh simulated terminal behind a real bridge process, wired into settings."""
    bridge = start_bridge(settings.MT5_BRIDGE_TOKEN)
    settings.MT5_BRIDGE_URL = bridge.url
    settings.MT5_CONNECTION_TIMEOUT = 3
    yield bridge
    bridge.process.terminate()
    bridge.process.wait(timeout=10)


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user(username="owner", password="pw-owner-1",
                                                 role="owner", is_staff=True)


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user(username="member", password="pw-member-1")


@pytest.fixture
def stranger(django_user_model):
    return django_user_model.objects.create_user(username="stranger", password="pw-strange-1")


@pytest.fixture
def linked_account(sim_bridge, member):
    """Account 7001 (USD, 1:100, 10,000) on the simulated server, linked to ``member``."""
    from accounts.services import trading_account_create

    def link(login: int = 7001, *, currency: str = "USD", leverage: int = 100,
             balance: str = "10000", user=None):
        sim_bridge.add_account(login, currency=currency, leverage=leverage, balance=balance)
        return trading_account_create(user=user or member, broker="mt5", broker_name="Sim",
                                      server=SIM_SERVER, login=str(login),
                                      password=f"pw-{login}")

    return link


def api_client_for(user):
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api(member):
    """An API client signed in as ``member`` with a real JWT."""
    return api_client_for(member)


@pytest.fixture
def stranger_api(stranger):
    return api_client_for(stranger)


@pytest.fixture
def owner_api(owner):
    return api_client_for(owner)


@pytest.fixture
def anon_api():
    from rest_framework.test import APIClient

    return APIClient()
