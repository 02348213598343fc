"""Nothing stays stuck when a task is lost: the sweeper resumes overdue re-checks and
closes (after their lease), and guard tasks retry on database errors instead of dropping
the episode. Through the simulated terminal behind the real bridge."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from brokers import mt5_api
from guards import services, tasks
from guards.models import CloseAttempt, CloseRequest, LiquidationEpisode
from pipeline import services as pipeline
from pipeline import tasks as pipeline_tasks
from pipeline.services import accounts_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """What the sweeper enqueues, instead of a broker."""
    sent: dict[str, list[int]] = {"rechecks": [], "closes": []}
    monkeypatch.setattr("guards.services.sweep.recheck_schedule",
                        lambda episode_id, delay=None: sent["rechecks"].append(episode_id))
    monkeypatch.setattr(tasks.close_request_execute, "apply_async",
                        lambda args, **_: sent["closes"].append(args[0]))
    return sent


def test_a_close_whose_worker_died_after_sending_is_resumed_and_not_resent(
        sim_bridge, linked_account, queued):
    account = linked_account(9601)
    ticket = int(sim_bridge.sim("sim_open", 9601, "EURUSD", "buy", "0.20", magic=1))
    accounts_sync(account_ids=[account.pk])
    request = services.close_request_open(account=account, ticket=ticket, symbol="EURUSD",
                                          key="episode:1", reason=CloseRequest.Reason.DRAWDOWN)
    # The worker committed "sending", the order went out, then the worker was SIGKILLed.
    sim_bridge.sim("sim_close", 9601, ticket, reason=mt5_api.DEAL_REASON_EXPERT)
    now = timezone.now()
    CloseRequest.objects.filter(pk=request.pk).update(
        status=CloseRequest.Status.SENDING, attempts=1, sending_until=now - timedelta(seconds=1),
        next_attempt_at=now - timedelta(seconds=11))

    # its lease has expired: the sweep queues it, once
    assert services.guards_sweep()["closes"] == 1
    assert services.guards_sweep()["closes"] == 0
    assert queued["closes"] == [request.pk]
    assert services.close_request_execute(close_request_id=request.pk) == "done"

    assert CloseAttempt.objects.get(close_request=request).comment == "found closed on look-up"
    outs = [d for d in sim_bridge.admin_deals(9601)
            if d.position_id == ticket and d.entry == mt5_api.DEAL_ENTRY_OUT]
    assert len(outs) == 1  # looked up, never sent twice


def test_a_close_still_leased_is_left_to_its_worker(sim_bridge, linked_account, queued):
    account = linked_account(9602)
    request = services.close_request_open(account=account, ticket=1, symbol="EURUSD",
                                          key="k", reason=CloseRequest.Reason.DRAWDOWN)
    now = timezone.now()
    CloseRequest.objects.filter(pk=request.pk).update(
        status=CloseRequest.Status.SENDING, sending_until=now + timedelta(seconds=20),
        next_attempt_at=now - timedelta(seconds=60))
    assert services.guards_sweep()["closes"] == 0
    # a pending one whose task was lost is queued
    CloseRequest.objects.filter(pk=request.pk).update(status=CloseRequest.Status.PENDING,
                                                      sending_until=None)
    assert services.guards_sweep()["closes"] == 1


def test_a_countdown_whose_recheck_was_lost_is_resumed(linked_account, queued):
    account = linked_account(9603)
    now = timezone.now()
    lost = LiquidationEpisode.objects.create(account=account, reason="drawdown_critical",
                                             started_at=now - timedelta(minutes=2),
                                             recheck_at=now - timedelta(minutes=1))
    assert services.guards_sweep()["rechecks"] == 1
    assert queued["rechecks"] == [lost.pk]
    # while a re-check holds the lease, neither the sweep nor a duplicate task runs it
    LiquidationEpisode.objects.filter(pk=lost.pk).update(
        lease_until=now + timedelta(seconds=30), recheck_at=now - timedelta(minutes=1))
    assert services.guards_sweep()["rechecks"] == 0
    assert pipeline.liquidation_recheck(episode_id=lost.pk) == "busy"


def test_a_recheck_that_hits_a_database_error_is_retried(linked_account):
    account = linked_account(9604)
    now = timezone.now()
    episode = LiquidationEpisode.objects.create(account=account, reason="drawdown_critical",
                                                started_at=now, recheck_at=now)
    calls = []

    def flaky(*, episode_id: int) -> str:
        calls.append(episode_id)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return "cancelled"

    with mock.patch.object(pipeline, "liquidation_recheck", flaky):
        result = pipeline_tasks.liquidation_recheck.apply(args=[episode.pk])

    assert result.get() == "cancelled"
    assert calls == [episode.pk, episode.pk]
    for task in (pipeline_tasks.liquidation_recheck, tasks.close_request_execute,
                 tasks.close_requests_execute):
        assert task.acks_late and task.reject_on_worker_lost


def test_a_recheck_that_fails_gives_its_lease_back(linked_account, monkeypatch):
    account = linked_account(9605)
    now = timezone.now()
    episode = LiquidationEpisode.objects.create(account=account, reason="drawdown_critical",
                                                started_at=now, recheck_at=now)

    def broken(**_):
        raise OperationalError("the database went away")

    monkeypatch.setattr("positions.services.accounts_sync", broken)  # the read under the pipeline
    with pytest.raises(OperationalError):
        pipeline.liquidation_recheck(episode_id=episode.pk)
    episode.refresh_from_db()
    assert episode.lease_until is None  # the retry can claim it at once
