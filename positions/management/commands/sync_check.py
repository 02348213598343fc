"""Exit 0 once some account has synced at least N times with moving prices (smoke test).

"Moving prices" means at least two different unrealized P&L figures among that account's
successful syncs, which only happens when the broker's prices changed between them.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from positions.models import EquitySnapshot, SyncLog


class Command(BaseCommand):
    help = "Wait until an account has N good syncs with changed prices, or fail."

    def add_arguments(self, parser):
        parser.add_argument("--min-syncs", type=int, default=2)
        parser.add_argument("--timeout", type=float, default=180)

    def handle(self, *args, min_syncs: int, timeout: float, **options):
        deadline = time.monotonic() + timeout
        while True:
            candidates = (
                SyncLog.objects.filter(result=SyncLog.Result.OK)
                .values("account_id").annotate(n=Count("id")).filter(n__gte=min_syncs)
                .values_list("account_id", flat=True)
            )
            for account_id in candidates:
                profits = set(EquitySnapshot.objects.filter(account_id=account_id)
                              .values_list("profit", flat=True))
                if len(profits) >= 2:
                    syncs = SyncLog.objects.filter(account_id=account_id, result="ok").count()
                    self.stdout.write(f"account {account_id}: {syncs} good syncs, "
                                      f"{len(profits)} distinct P&L figures")
                    return
            if time.monotonic() > deadline:
                raise CommandError(f"no account reached {min_syncs} syncs with moving prices "
                                   f"within {timeout:g} s")
            time.sleep(2)
