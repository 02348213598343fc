"""Concurrent closes never strand a liquidation episode (PostgreSQL, real threads).

The race: N close requests of one episode finish within milliseconds of each other. When
each finisher counted its siblings inside its own transaction, two committing together
each saw the other still "sending", and the episode stayed "liquidating" forever (seen in
8 of 49 multi-position liquidations). The episode row lock must decide it every time.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import trading_account_create
from guards.models import CloseRequest, LiquidationEpisode
from guards.services import closes as services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

REPETITIONS = 50
CLOSES = 4


def _episode_with_requests(user, n: int, index: int) -> tuple[LiquidationEpisode,
                                                                 list[CloseRequest]]:
    account = trading_account_create(user=user, broker="mt5", broker_name="Sim",
                                     server="SimBroker-Race", login=str(80000 + index),
                                     password="pw")
    now = timezone.now()
    episode = LiquidationEpisode.objects.create(
        account=account, status=LiquidationEpisode.Status.LIQUIDATING, reason="test",
        started_at=now, recheck_at=now)
    requests = [CloseRequest.objects.create(
        account=account, ticket=1000 + i, key=f"episode:{episode.pk}", episode=episode,
        reason=CloseRequest.Reason.DRAWDOWN, status=CloseRequest.Status.SENDING, attempts=1)
        for i in range(n)]
    return episode, requests


def _finish_together(requests: list[CloseRequest]) -> list[BaseException]:
    barrier = threading.Barrier(len(requests))
    errors: list[BaseException] = []

    def finish(request: CloseRequest) -> None:
        try:
            barrier.wait(timeout=10)
            services._close_request_record(
                request, sends=[services._Send(services.Outcome.DONE, retcode=10009,
                                               price=Decimal("1.08"), volume=Decimal("0.1"))],
                realized=Decimal("-1.00"))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def test_concurrent_closes_always_finish_the_episode(member):
    stranded = []
    for index in range(REPETITIONS):
        episode, requests = _episode_with_requests(member, CLOSES, index)
        assert _finish_together(requests) == []
        episode.refresh_from_db()
        assert set(CloseRequest.objects.filter(episode=episode)
                   .values_list("status", flat=True)) == {"done"}
        if episode.status != LiquidationEpisode.Status.DONE:
            stranded.append(index)
    assert stranded == [], f"{len(stranded)} of {REPETITIONS} episodes stranded"
