"""Exit 0 once every named divergence kind has been logged, or fail (demo smoke test)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from reconciliation.models import ReconciliationLog


class Command(BaseCommand):
    help = "Wait until the reconciliation log holds each of --kinds, or fail after --timeout."

    def add_arguments(self, parser):
        parser.add_argument("--kinds", required=True, help="comma-separated divergence kinds")
        parser.add_argument("--timeout", type=float, default=300)

    def handle(self, *args, kinds: str, timeout: float, **options):
        wanted = {k.strip() for k in kinds.split(",") if k.strip()}
        deadline = time.monotonic() + timeout
        while True:
            seen = set(ReconciliationLog.objects.filter(kind__in=wanted)
                       .values_list("kind", flat=True).distinct())
            if seen >= wanted:
                self.stdout.write(f"reconciliation: logged {', '.join(sorted(seen))}")
                return
            if time.monotonic() > deadline:
                raise CommandError(f"after {timeout:g} s still missing: "
                                   f"{', '.join(sorted(wanted - seen))}")
            time.sleep(3)
