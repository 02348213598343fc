"""Exit 0 once a liquidation episode has finished with its positions closed, and the demo's
30 % withdrawal has been read without moving its account's guard off "ok" (demo smoke)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from brokers.sim.roster import DEMO_WITHDRAWAL_COMMENT
from guards.models import AccountGuardState, CloseRequest, DrawdownAlert, LiquidationEpisode
from positions.models import CashFlow


class Command(BaseCommand):
    help = ("Wait until a liquidation episode is done and the demo withdrawal left its "
            "account at guard level ok, or fail after --timeout.")

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=180)

    def handle(self, *args, timeout: float, **options):
        deadline = time.monotonic() + timeout
        self._wait(deadline, timeout, self._liquidated, "no liquidation finished")
        self._wait(deadline, timeout, self._withdrawal_ok, "the demo withdrawal was not read")

    def _wait(self, deadline: float, timeout: float, check, failure: str) -> None:
        while not check():
            if time.monotonic() > deadline:
                states = list(LiquidationEpisode.objects.values_list("status", flat=True))
                raise CommandError(f"{failure} within {timeout:g} s (episodes: {states})")
            time.sleep(2)

    def _liquidated(self) -> bool:
        episode = LiquidationEpisode.objects.filter(
            status=LiquidationEpisode.Status.DONE).first()
        if episode is None:
            return False
        closed = CloseRequest.objects.filter(episode=episode, status="done").count()
        self.stdout.write(f"guards: episode {episode.pk} of account {episode.account_id} "
                          f"done: {closed} positions closed ({episode.outcome})")
        return True

    def _withdrawal_ok(self) -> bool:
        flow = CashFlow.objects.select_related("account").filter(
            comment=DEMO_WITHDRAWAL_COMMENT, baseline=False).first()
        if flow is None:
            return False
        account = flow.account
        state = AccountGuardState.objects.filter(account=account).first()
        if state is None or state.checked_at is None or state.checked_at <= flow.recorded_at:
            return False  # the guard has not judged a read after the withdrawal yet
        if state.level != "ok" or LiquidationEpisode.objects.filter(account=account).exists() \
                or DrawdownAlert.objects.filter(account=account).exclude(level_to="ok").exists():
            raise CommandError(f"the withdrawal of {flow.amount} {account.currency} moved "
                               f"account {account.login} to {state.level}")
        self.stdout.write(f"guards: account {account.login} withdrew {-flow.amount} "
                          f"{account.currency} (30 %): peak {account.peak_equity}, drawdown "
                          f"{account.drawdown_percent} %, guard level {state.level}")
        return True
