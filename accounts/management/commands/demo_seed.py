"""Seed the demo: an owner and the members of the simulated terminal's roster, and two
Interactive Brokers paper accounts behind the IB Gateway stand-in.

Idempotent: users and accounts that exist are left as they are. The roster
(``brokers.sim.roster``) is deterministic, so the terminal process and this command agree
on logins, passwords and the server without talking to each other.
"""

from __future__ import annotations

import os
import secrets

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import Terminal, TradeServer, TradingAccount, User
from accounts.services import trading_account_create
from brokers.servertime import zone_for_offset
from brokers.sim.roster import DEMO_IB_ACCOUNTS, DEMO_SERVER, demo_roster, roster_part_of


class Command(BaseCommand):
    help = "Create the demo owner and members with simulated MT5 accounts."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=20)
        parser.add_argument("--owner", default="owner")
        parser.add_argument(
            "--terminals", type=int, default=int(os.environ.get("DEMO_TERMINALS", "2")),
            help="simulated terminals of the demo fleet (the Procfile's terminal, terminal2 "
                 "on SIM_BRIDGE_PORT, SIM_BRIDGE_PORT_2), each holding its part of the "
                 "roster; 1: none registered, every account on MT5_BRIDGE_URL")

    @transaction.atomic
    def handle(self, *args, members: int, owner: str, terminals: int, **options):
        password = os.environ.get("DEMO_OWNER_PASSWORD") or secrets.token_urlsafe(12)
        owner_user, created = User.objects.get_or_create(
            username=owner,
            defaults={"role": User.Role.OWNER, "is_staff": True, "is_superuser": True,
                      "first_name": "Owner"},
        )
        if created:
            owner_user.set_password(password)
            owner_user.save(update_fields=["password"])
            self.stdout.write(f"owner '{owner}' created")
        new_accounts = 0
        member_password = os.environ.get("DEMO_MEMBER_PASSWORD", "")
        roster = demo_roster(n_members=members)
        fleet = self._terminals(terminals)
        for member in roster:
            user, created = User.objects.get_or_create(
                username=member.username,
                defaults={"first_name": member.first_name, "last_name": member.last_name,
                          "telegram_id": member.telegram_id, "role": User.Role.MEMBER},
            )
            if created and member_password:  # so a newcomer can open the mini app as one
                user.set_password(member_password)
                user.save(update_fields=["password"])
            for spec in member.accounts:
                exists = TradingAccount.objects.filter(
                    broker=TradingAccount.Broker.MT5, server=spec.server, login=str(spec.login)
                ).exists()
                if exists:
                    continue
                account = trading_account_create(
                    user=user, broker=TradingAccount.Broker.MT5, broker_name="SimBroker",
                    server=spec.server, login=str(spec.login), password=spec.password,
                    # the simulated terminal that holds it: each sim holds its own part
                    terminal=fleet[roster_part_of(spec.login, len(fleet)) - 1]
                    if fleet else None,
                )
                # The roster is the simulated server's own list: verified by construction.
                TradingAccount.objects.filter(pk=account.pk).update(verified_at=timezone.now())
                new_accounts += 1
        self._trade_servers({spec.server for member in roster for spec in member.accounts})
        if roster:
            new_accounts += self._ibkr(User.objects.get(username=roster[0].username))
        total = TradingAccount.objects.count()
        self.stdout.write(f"demo ready: {User.objects.filter(role=User.Role.MEMBER).count()} "
                          f"members, {total} accounts ({new_accounts} new)")
        if roster:
            self.stdout.write(f"mini app member: {roster[0].username}")

    def _terminals(self, count: int) -> list[Terminal]:
        """The demo fleet as the owner would register it in the admin: ``sim-1`` … on
        127.0.0.1 at ``SIM_BRIDGE_PORT`` (8765) and ``SIM_BRIDGE_PORT_2`` (8766), the token
        in ``MT5_BRIDGE_TOKEN``. Fewer than 2: none (the one-terminal default)."""
        if count < 2:
            return []
        if count > 2:
            raise CommandError("the demo's Procfile runs two simulated terminals")
        ports = (os.environ.get("SIM_BRIDGE_PORT", "8765"),
                 os.environ.get("SIM_BRIDGE_PORT_2", "8766"))
        fleet = []
        for n, port in enumerate(ports, start=1):
            terminal, _ = Terminal.objects.update_or_create(name=f"sim-{n}", defaults={
                "kind": Terminal.Kind.MT5, "url": f"http://127.0.0.1:{port}",
                "token_env": "MT5_BRIDGE_TOKEN", "servers": [DEMO_SERVER],
                "capacity": 1000})
            fleet.append(terminal)
        self.stdout.write(f"terminals: {', '.join(f'{t.name} {t.url}' for t in fleet)} "
                          "(each holds half of the roster)")
        return fleet

    def _ibkr(self, user: User) -> int:
        """The IB Gateway stand-in (Procfile ``ibgateway`` on ``SIM_IB_PORT``, 4002) as the
        owner would register an IB Gateway: Terminal ``ib-gateway`` (clientId base 100,
        serving its two paper accounts), and those accounts linked to the mini app member:
        ``DU1234567`` (USD; GOOG and EURUSD) and ``DU7654321`` (EUR; GOOG). Verified by
        construction (the stand-in manages them; it is not running yet). Returns how many
        were new."""
        port = int(os.environ.get("SIM_IB_PORT", "4002"))
        ids = [account_id for account_id, _ in DEMO_IB_ACCOUNTS]
        terminal, _ = Terminal.objects.update_or_create(name="ib-gateway", defaults={
            "kind": Terminal.Kind.IB_GATEWAY, "host": "127.0.0.1", "port": port,
            "client_id": 100, "servers": ids, "capacity": 100})
        new = 0
        for account_id in ids:
            if TradingAccount.objects.filter(broker=TradingAccount.Broker.IBKR,
                                             login=account_id, is_active=True).exists():
                continue
            account = trading_account_create(
                user=user, broker=TradingAccount.Broker.IBKR, broker_name="IB paper (stand-in)",
                server=account_id, login=account_id, password=None, terminal=terminal)
            TradingAccount.objects.filter(pk=account.pk).update(verified_at=timezone.now())
            new += 1
        self.stdout.write(f"IB Gateway {terminal.name} 127.0.0.1:{port}: {', '.join(ids)} "
                          f"linked to {user.username}")
        return new

    def _trade_servers(self, names: set[str]) -> None:
        """The simulated servers' time zone, as the owner would set it in the admin: the
        replay's clock is in 2017, so the last tick cannot tell the offset at link time.
        ``SIM_SERVER_UTC_OFFSET`` (hours, default 2: most MetaTrader 5 brokers run GMT+2)
        is what the Procfile's terminal is started with."""
        hours = float(os.environ.get("SIM_SERVER_UTC_OFFSET", "2"))
        zone = zone_for_offset(round(hours * 60)) or "UTC"
        for name in sorted(names):
            TradeServer.objects.update_or_create(name=name, defaults={
                "timezone": zone, "detection": f"set by the demo seed (the simulated server "
                                               f"runs at UTC{hours:+g} h)"})
        if names:
            self.stdout.write(f"trade servers {', '.join(sorted(names))}: {zone}")

