"""Close requests (pipeline step 5): idempotent closes, and the liquidation's completion
that the last of them decides.

A close is a ``CloseRequest`` row keyed by (account, ticket, key). Its status is committed
as "sending" before the order goes out; a worker that dies after sending leaves it there,
and whoever takes it next looks the position up before sending again. A read-only
(investor password) account is alerted, never closed."""


from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status

from accounts.models import TradingAccount
from brokers.errors import BrokerError
from config.errors import ApplicationError
from config.ratelimit import once_per
from guards import metrics
from guards.models import (
    AccountGuardState,
    CloseAttempt,
    CloseRequest,
    GuardAlert,
    LiquidationEpisode,
)
from guards.services.alerts import guard_alerts_save
from guards.services.platform import platform_is_halted
from positions import pnl
from positions.models import Position

SENDING_LEASE = timedelta(seconds=30)


MAX_FILLS_PER_ATTEMPT = 10  # partial fills followed within one attempt


MAX_RETRY_SECONDS = 30  # backoff cap of an emergency close that keeps failing


FAILURE_ALERT_INTERVAL = timedelta(minutes=5)


FINAL_CLOSE = (CloseRequest.Status.DONE, CloseRequest.Status.FAILED,
               CloseRequest.Status.CANCELLED)


class Outcome(enum.StrEnum):
    """What one close or re-check attempt came to (``CloseAttempt.outcome``)."""

    DONE = "done"
    PARTIAL = "partial"  # part filled; the rest is sent at once
    RETRY = "retry"  # refused with a fresh-price retcode: send again later
    AMBIGUOUS = "ambiguous"  # unknown: look the position up before sending again
    FAILED = "failed"  # a retcode that says stop: left for a person
    BUSY = "busy"  # another worker holds it
    MISSING = "missing"  # no such request


def close_request_open(*, account: TradingAccount, ticket: int, symbol: str, key: str,
                       reason: str, episode: LiquidationEpisode | None = None,
                       detail: str = "", requested_by: Any = None) -> CloseRequest:
    """The close request for (account, ticket, key): created once, found ever after."""
    try:
        with transaction.atomic():
            return CloseRequest.objects.create(
                account=account, ticket=ticket, symbol=symbol, key=key, episode=episode,
                reason=reason, detail=detail[:200], requested_by=requested_by,
                next_attempt_at=timezone.now())
    except IntegrityError:
        return CloseRequest.objects.get(account=account, ticket=ticket, key=key)


def closes_enqueue(ids: list[int]) -> None:
    """Queue close requests: one task per account (``close_requests_execute``), so an
    account's closes go out in one call sequence on its terminal (one lease, at most one
    login switch) instead of one sequence each."""
    from guards.tasks import close_requests_execute

    by_account: dict[int, list[int]] = {}
    for request_id, account_id in CloseRequest.objects.filter(pk__in=ids).order_by(
            "pk").values_list("pk", "account_id"):
        by_account.setdefault(account_id, []).append(request_id)
    for request_ids in by_account.values():
        close_requests_execute.apply_async(args=[request_ids])


def _realized(gateway: Any, requests: list[CloseRequest]) -> dict[int, Decimal | None]:
    """Realized P&L of closed positions (by close request id) from their deals
    (``positions.pnl.position_closing``, the same function the sync uses), joined on the
    position identifier: one positions query and one deals call for all of them. A failed
    deals read leaves them None (the sync fills the position's figure later)."""
    if not requests:
        return {}
    rows = {ticket: (opened, identifier) for ticket, opened, identifier in
            Position.objects.filter(account_id=requests[0].account_id,
                                    ticket__in=[r.ticket for r in requests])
            .values_list("ticket", "opened_at", "identifier")}
    if not rows:
        return {r.pk: None for r in requests}
    try:
        deals = gateway.deals(since=min(o for o, _ in rows.values()) - timedelta(minutes=1))
    except BrokerError:
        return {r.pk: None for r in requests}
    realized: dict[int, Decimal | None] = {}
    for request in requests:
        if request.ticket not in rows:
            realized[request.pk] = None
            continue
        position_id = rows[request.ticket][1] or request.ticket
        closing = pnl.position_closing([d for d in deals if d.position_id == position_id])
        realized[request.pk] = None if closing is None else closing.realized_pnl
    return realized


@dataclass(slots=True)
class _Send:
    """One order sent for a close request, as recorded in ``CloseAttempt``."""

    outcome: str
    retcode: int | None = None
    comment: str = ""
    price: Decimal | None = None
    volume: Decimal | None = None
    duration_ms: int = 0


def _close_claim(close_request_id: int, now: datetime) -> tuple[CloseRequest | None, str]:
    """Take the request for one attempt: (request, "") or (None, the reason not to send)."""
    with transaction.atomic():
        request = CloseRequest.objects.select_for_update().select_related("account").filter(
            pk=close_request_id).first()
        if request is None:
            return None, Outcome.MISSING
        if request.status in FINAL_CLOSE:
            return None, request.status
        if request.status == CloseRequest.Status.SENDING and request.sending_until and \
                request.sending_until > now:
            return None, Outcome.BUSY  # another worker is sending this very close right now
        if request.account.credentials_read_only:
            request.status = CloseRequest.Status.FAILED
            request.save(update_fields=["status"])
            guard_alerts_save([GuardAlert(
                account_id=request.account_id, kind=GuardAlert.Kind.READ_ONLY_NOT_CLOSED,
                message=f"#{request.ticket} not closed: read-only account", created_at=now)])
            return None, request.status
        if request.failing_since is not None and \
                platform_is_halted():
            # The owner's kill switch stops an emergency close that keeps failing.
            request.status = CloseRequest.Status.CANCELLED
            request.next_attempt_at = None
            request.save(update_fields=["status", "next_attempt_at"])
            guard_alerts_save([GuardAlert(
                account_id=request.account_id, kind=GuardAlert.Kind.CLOSE_FAILED,
                message=f"Closing #{request.ticket} stopped: the platform is halted.",
                payload={"close_request": request.pk}, created_at=now)])
            if request.episode_id:
                episode_maybe_done(request.episode_id, now)
            return None, request.status
        # Committed before anything is sent: a worker killed after sending leaves this,
        # and whoever takes it after the lease looks the position up before sending.
        request.status = CloseRequest.Status.SENDING
        request.sending_until = now + SENDING_LEASE
        request.next_attempt_at = request.sending_until
        request.attempts += 1
        request.save(update_fields=["status", "sending_until", "next_attempt_at", "attempts"])
    return request, ""


def _listed(gateway: Any, ticket: int) -> bool:
    return ticket in {p.ticket for p in gateway.positions()}


def _close_send(gateway: Any, request: CloseRequest, *, look_first: bool) -> list[_Send]:
    """Send the close until the position is flat or a retcode class says stop.

    A partial fill (MetaTrader 5: TRADE_RETCODE_DONE_PARTIAL, or less than asked) is not a
    failure: the position is looked up and the remainder sent, in the same attempt
    sequence. "done" is only recorded once the broker no longer lists the position.
    """
    sends: list[_Send] = []
    if look_first and not _listed(gateway, request.ticket):
        return [_Send(Outcome.DONE, comment="found closed on look-up")]
    for _ in range(MAX_FILLS_PER_ATTEMPT):
        started = time.perf_counter()
        result = gateway.close_position(request.ticket, None, f"bo-close-{request.pk}")
        send = _Send(Outcome.FAILED, retcode=result.retcode, comment=result.comment,
                     price=result.price, volume=result.volume)
        send.duration_ms = int((time.perf_counter() - started) * 1000)
        sends.append(send)
        if result.partial or (result.done and _listed(gateway, request.ticket)):
            send.outcome = Outcome.PARTIAL  # the rest is still open: send it
            continue
        send.outcome = (Outcome.DONE if result.done else Outcome.RETRY if result.retryable
                        else Outcome.AMBIGUOUS if result.ambiguous else Outcome.FAILED)
        return sends
    sends[-1].outcome = Outcome.RETRY  # still partly open after many fills: go on later
    return sends


#: how long a close waits for its terminal's lease (another call sequence) before it counts
#: as an ambiguous attempt, retried with the backoff
TERMINAL_WAIT_SECONDS = 15.0


def close_request_execute(*, close_request_id: int) -> str:
    """One attempt at a close request. Returns its status afterwards
    (``close_requests_execute`` of that one request)."""
    return close_requests_execute(close_request_ids=[close_request_id])[close_request_id]


def close_requests_execute(*, close_request_ids: list[int]) -> dict[int, str]:
    """One attempt at each of these close requests; those of one account go out in one
    call sequence on its terminal (one lease, ahead of routine reads: at most one login
    switch for all of them). Returns each request's status afterwards (or why it was not
    sent: busy, missing).

    Retcodes (MetaTrader 5): done → look-up, done when the broker no longer lists the
    position; partial fill → the remainder is sent at once; requote / price off / price
    changed / too many requests / locked / frozen → retry with a fresh price; timeout /
    connection / no reply / the broker unreachable → ambiguous: the next attempt looks the
    position up before sending. Both retry with backoff capped at 30 s until the position
    is flat, the owner cancels the request in the admin, or the kill switch is HALTED; an
    alert goes out at the first failure and every 5 minutes after. Position already closed
    → done. Anything else → failed, alerted, left for a person. An ambiguous reply for one
    position does not stop the others (other tickets: nothing is sent twice), but a broker
    error (the terminal's link failed) ends the sequence: that request and the ones not
    yet sent are ambiguous, and the next attempt looks each up before sending.
    """
    now = timezone.now()
    sending = set(CloseRequest.objects.filter(
        pk__in=close_request_ids, status=CloseRequest.Status.SENDING).values_list(
        "pk", flat=True))
    statuses: dict[int, str] = {}
    claimed: dict[int, list[CloseRequest]] = {}
    for request_id in close_request_ids:
        request, refusal = _close_claim(request_id, now)
        if request is None:
            statuses[request_id] = refusal
        else:
            claimed.setdefault(request.account_id, []).append(request)
    for requests in claimed.values():
        statuses.update(_account_closes_send(requests, look_first=sending))
    return statuses


def _account_closes_send(requests: list[CloseRequest], *,
                         look_first: set[int]) -> dict[int, str]:
    """Send one account's claimed close requests in one call sequence, then record each."""
    from accounts.gateways import account_gateway
    from accounts.terminals import TerminalBusy, terminal_session

    account = requests[0].account
    sends: dict[int, list[_Send]] = {}
    realized: dict[int, Decimal | None] = {}
    started = time.perf_counter()
    try:
        # the account's terminal serves one call sequence at a time; closes go ahead of
        # routine reads (accounts.terminals)
        with terminal_session(terminal_id=account.terminal_id, priority=True,
                              deadline=time.monotonic() + TERMINAL_WAIT_SECONDS) as session:
            gateway = account_gateway(account)
            for request in requests:
                sent = time.perf_counter()
                try:
                    sends[request.pk] = _close_send(gateway, request,
                                                    look_first=request.pk in look_first)
                except BrokerError as exc:
                    sends[request.pk] = [_Send(
                        Outcome.AMBIGUOUS, comment=f"{exc.code}: {exc}"[:200],
                        duration_ms=int((time.perf_counter() - sent) * 1000))]
                    break
            realized = _realized(gateway, [r for r in requests if r.pk in sends
                                           and sends[r.pk][-1].outcome == Outcome.DONE])
            session.ok = True
    except (BrokerError, TerminalBusy) as exc:
        # A read before sending failed (nothing sent) or a reply was lost (unknown): either
        # way the next attempt looks the position up first.
        failure = f"{exc.code}: {exc}"[:200]
    else:
        failure = "not sent: an earlier close of this account failed"
    elapsed = int((time.perf_counter() - started) * 1000)
    return {request.pk: _close_request_record(
        request, sends=sends.get(request.pk) or [
            _Send(Outcome.AMBIGUOUS, comment=failure, duration_ms=elapsed)],
        realized=realized.get(request.pk)) for request in requests}


def _close_failure_alert(request: CloseRequest, fields: dict[str, Any], last: _Send,
                         now: datetime) -> None:
    """An emergency close that keeps failing is alerted at once and every 5 minutes."""
    fields["failing_since"] = request.failing_since or now
    if request.failure_alerted_at is None or \
            now - request.failure_alerted_at >= FAILURE_ALERT_INTERVAL:
        fields["failure_alerted_at"] = now
        guard_alerts_save([GuardAlert(
            account_id=request.account_id, kind=GuardAlert.Kind.CLOSE_FAILED,
            message=f"Closing #{request.ticket} has not gone through yet ({last.retcode} "
                    f"{last.comment}); retrying until it is flat.",
            payload={"close_request": request.pk, "since": fields["failing_since"].isoformat()},
            created_at=now)])


def _close_request_record(request: CloseRequest, *, sends: list[_Send],
                          realized: Decimal | None) -> str:
    now = timezone.now()
    last = sends[-1]
    retry_in: int | None = None
    with transaction.atomic():
        CloseAttempt.objects.bulk_create([CloseAttempt(
            close_request=request, number=request.attempts, outcome=send.outcome,
            retcode=send.retcode, comment=send.comment[:200], price=send.price,
            volume=send.volume, realized_pnl=realized if send is last else None,
            duration_ms=send.duration_ms, created_at=now) for send in sends])
        for send in sends:
            metrics.close_attempts_total.labels(outcome=send.outcome).inc()
        filled = sum((s.volume or Decimal(0) for s in sends
                      if s.outcome in (Outcome.DONE, Outcome.PARTIAL)), Decimal(0))
        fields: dict[str, Any] = {"last_retcode": last.retcode, "sending_until": None,
                                  "next_attempt_at": None}
        if filled:
            fields["closed_volume"] = (request.closed_volume or Decimal(0)) + filled
            fields["close_price"] = next(s.price for s in reversed(sends) if s.volume)
        if last.outcome == Outcome.DONE:
            fields.update(status=CloseRequest.Status.DONE, realized_pnl=realized, done_at=now)
            metrics.positions_autoclosed_total.labels(reason=request.reason).inc()
        elif last.outcome in (Outcome.RETRY, Outcome.AMBIGUOUS):
            fields["status"] = (CloseRequest.Status.PENDING if last.outcome == Outcome.RETRY
                                else CloseRequest.Status.SENDING)
            retry_in = min(2 ** min(request.attempts, 5), MAX_RETRY_SECONDS)
            fields["next_attempt_at"] = now + timedelta(seconds=retry_in)
            _close_failure_alert(request, fields, last, now)
        else:
            fields["status"] = CloseRequest.Status.FAILED
            guard_alerts_save([GuardAlert(
                account_id=request.account_id, kind=GuardAlert.Kind.CLOSE_FAILED,
                message=f"Closing #{request.ticket} failed ({last.retcode} {last.comment}); "
                        "left for a person.", payload={"close_request": request.pk},
                created_at=now)])
        CloseRequest.objects.filter(pk=request.pk).update(**fields)
        if request.episode_id and fields["status"] in FINAL_CLOSE:
            episode_maybe_done(request.episode_id, now)
        if retry_in is not None:
            request_id = request.pk
            transaction.on_commit(lambda: _retry_close(request_id, retry_in))
    return fields["status"]


def close_request_cancel(*, close_request: CloseRequest, cancelled_by: Any) -> bool:
    """The owner stops a close that is still being retried (pending or sending); audited as
    a ``CloseAttempt`` "cancelled" naming who. A close that already went through stays
    done: a worker sending right now records what the broker answered. Returns whether it
    was cancelled."""
    now = timezone.now()
    with transaction.atomic():
        # conditional: a worker may finish it at the same moment
        cancelled = CloseRequest.objects.filter(
            pk=close_request.pk,
            status__in=(CloseRequest.Status.PENDING, CloseRequest.Status.SENDING)).update(
            status=CloseRequest.Status.CANCELLED, next_attempt_at=None)
        if not cancelled:
            return False
        CloseAttempt.objects.create(
            close_request=close_request, number=close_request.attempts, outcome="cancelled",
            comment=f"cancelled by {cancelled_by}"[:200], duration_ms=0, created_at=now)
        if close_request.episode_id:
            episode_maybe_done(close_request.episode_id, now)
    return True


def _retry_close(request_id: int, countdown: int) -> None:
    from guards.tasks import close_request_execute

    close_request_execute.apply_async(args=[request_id], countdown=countdown)


def episode_finish(episode: LiquidationEpisode, status_to: str, outcome: str, kind: str,
                    now: datetime, expect: str = LiquidationEpisode.Status.WARNING,
                    payload: dict | None = None) -> bool:
    with transaction.atomic():
        moved = LiquidationEpisode.objects.filter(pk=episode.pk, status=expect).update(
            status=status_to, finished_at=now, outcome=outcome[:200], lease_until=None)
        if moved:
            guard_alerts_save([GuardAlert(account_id=episode.account_id, kind=kind,
                                          message=f"Liquidation {status_to}: {outcome}"[:500],
                                          payload=payload or {}, created_at=now)])
    return bool(moved)


def episode_maybe_done(episode_id: int, now: datetime) -> None:
    """Finish a liquidation once every close request of it is final. Call inside the
    transaction that made one of them final.

    The race this prevents: two closes of one episode commit together, and each, counting
    its siblings in its own transaction, sees the other still "sending", so neither
    finishes the episode and the account stays in "liquidating" forever, unguarded. Here
    every finisher first locks the episode row: the second waits until the first commits,
    and its count, a statement that starts after that commit (READ COMMITTED), sees it.
    """
    episode = LiquidationEpisode.objects.select_for_update().filter(
        pk=episode_id, status=LiquidationEpisode.Status.LIQUIDATING).first()
    if episode is None:
        return
    requests = list(CloseRequest.objects.filter(episode_id=episode_id).order_by("pk"))
    if any(r.status not in FINAL_CLOSE for r in requests):
        return
    # A liquidated account takes no new trades until the owner clears it (the guard state
    # in the admin) or its trading day rolls over.
    AccountGuardState.objects.filter(account_id=episode.account_id).update(
        trading_blocked=True)
    left = [r.ticket for r in requests if r.status != CloseRequest.Status.DONE]
    pnl_total = sum((r.realized_pnl or Decimal(0) for r in requests), Decimal(0))
    summary = (f"{len(requests) - len(left)} closed, realized {pnl_total}"
               + (f"; not closed: {left}" if left else ""))
    if not left:
        # Flat: the high-water mark restarts at the next good read (positions.services).
        TradingAccount.objects.filter(pk=episode.account_id).update(
            baseline_reset_requested=True)
    episode_finish(episode,
                    LiquidationEpisode.Status.FAILED if left else LiquidationEpisode.Status.DONE,
                    summary,
                    GuardAlert.Kind.CLOSE_FAILED if left else GuardAlert.Kind.LIQUIDATION_DONE,
                    now, expect=LiquidationEpisode.Status.LIQUIDATING,
                    payload={"positions": [
                        {"ticket": str(r.ticket), "status": r.status,
                         "price": str(r.close_price), "realized_pnl": str(r.realized_pnl)}
                        for r in requests]})


MANUAL_CLOSE_INTERVAL = 30


def manual_close(*, position: Position, requested_by: Any, reason: str) -> CloseRequest:
    """A member closes one position through the same idempotent path, at most once per
    symbol per 30 s per account (429 with Retry-After: ``config.ratelimit.once_per``).
    Refused while HALTED and on read-only accounts (409)."""
    account = position.account
    if platform_is_halted():
        raise ApplicationError("The platform is halted: only the guards close positions.",
                               code="platform_halted", status_code=status.HTTP_409_CONFLICT)
    if account.credentials_read_only:
        raise ApplicationError("This account is linked read-only (investor password).",
                               code="read_only_account", status_code=status.HTTP_409_CONFLICT)
    if position.status != Position.Status.OPEN:
        existing = CloseRequest.objects.filter(account=account, ticket=position.ticket,
                                               key=f"manual:{position.pk}").first()
        if existing is not None:
            return existing
        raise ApplicationError("This position is already closed.", code="position_closed",
                               status_code=status.HTTP_409_CONFLICT)
    once_per(f"manual-close:{account.pk}:{position.symbol}", MANUAL_CLOSE_INTERVAL,
             message=f"One manual close per symbol per {MANUAL_CLOSE_INTERVAL} s.")
    request = close_request_open(account=account, ticket=position.ticket,
                                 symbol=position.symbol, key=f"manual:{position.pk}",
                                 reason=CloseRequest.Reason.MANUAL, detail=reason,
                                 requested_by=requested_by)
    close_request_execute(close_request_id=request.pk)
    request.refresh_from_db()
    return request
