"""Exit 0 once a liquidation episode has finished with its positions closed (demo smoke)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from guards.models import CloseRequest, LiquidationEpisode


class Command(BaseCommand):
    help = "Wait until a liquidation episode is done, or fail after --timeout."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=180)

    def handle(self, *args, timeout: float, **options):
        deadline = time.monotonic() + timeout
        while True:
            episode = LiquidationEpisode.objects.filter(
                status=LiquidationEpisode.Status.DONE).first()
            if episode is not None:
                closed = CloseRequest.objects.filter(episode=episode, status="done").count()
                self.stdout.write(f"guards: episode {episode.pk} of account "
                                  f"{episode.account_id} done: {closed} positions closed "
                                  f"({episode.outcome})")
                return
            if time.monotonic() > deadline:
                states = list(LiquidationEpisode.objects.values_list("status", flat=True))
                raise CommandError(f"no liquidation finished within {timeout:g} s "
                                   f"(episodes: {states})")
            time.sleep(2)
