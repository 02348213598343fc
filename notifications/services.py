"""Alerts: the outbox write (in the event's transaction), delivery through Telegram with
exactly-once marking, the sweeper for lost tasks, and members' preferences.

Delivery states: pending → sending → sent | failed | skipped, and sending → pending for a
retry. Every change is a conditional UPDATE on (pk, status[, claim]) whose row count
decides races between duplicated tasks, the sweeper and redelivered messages.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import TradingAccount, User
from notifications import metrics, telegram
from notifications.models import Alert, AlertPreference

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # calls to Telegram per alert; ~8.5 min of backoff before giving up
BACKOFF_BASE_SECONDS = 2  # 2, 4, 8, … s after the 1st, 2nd, 3rd … failed call
BACKOFF_CAP_SECONDS = 300
# Longer than the task's hard time limit (45 s): a live worker never loses its lease.
SENDING_LEASE = timedelta(seconds=60)
SWEEP_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 500
UNDELIVERED = (Alert.Status.PENDING, Alert.Status.SENDING)


# --- the outbox ---
def alert_enqueue(*, user: User, kind: str, text: str, payload: dict | None = None,
                  account: TradingAccount | None = None) -> Alert | None:
    """Write an outbox row in the CURRENT transaction (call it inside the event's
    transaction); returns None when the member turned this kind off. Schedules delivery
    with transaction.on_commit (so a rollback sends nothing).

    ``kind`` is an ``Alert.Kind`` value; ``text`` is plain text, cut to Telegram's 4,096
    UTF-16 units; ``payload`` is JSON for the admin (Decimal and datetime are stored as
    strings). A lost delivery task is picked up by ``alerts_sweep``. Raises ValueError for
    an unknown kind or an empty text (a programming error). Two queries.
    """
    if kind not in Alert.Kind.values:
        raise ValueError(f"unknown alert kind {kind!r}; one of {Alert.Kind.values}")
    if not text.strip():
        raise ValueError("an alert needs a text")
    mode = (AlertPreference.objects.filter(user=user, kind=kind)
            .values_list("mode", flat=True).first()) or AlertPreference.Mode.ON
    if mode == AlertPreference.Mode.OFF:
        return None
    now = timezone.now()
    alert = Alert.objects.create(
        user=user, account=account, kind=kind, text=telegram.text_fit(text),
        payload=payload or {}, silent=mode == AlertPreference.Mode.SILENT, created_at=now,
        due_at=now)
    # robust: a broker that is down must not fail the caller after its event committed;
    # the row is committed, and the sweeper sends it once the broker is back.
    transaction.on_commit(partial(_delivery_schedule, alert.pk), robust=True)
    return alert


def alert_outbox_receiver(sender: object, *, user: User, kind: str, text: str,
                          payload: dict | None = None, account: TradingAccount | None = None,
                          **kwargs: object) -> Alert | None:
    """``config.events.alert_raised`` → ``alert_enqueue``: the steps below notifications
    raise alerts through the signal, in their own transaction."""
    return alert_enqueue(user=user, kind=kind, text=text, payload=payload, account=account)


def _delivery_schedule(alert_id: int, countdown: float | None = None) -> None:
    from notifications.tasks import deliver_alert

    deliver_alert.apply_async(args=[alert_id], countdown=countdown)


# --- delivery ---
@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery call did. ``retry_in`` (seconds) asks the caller to run it again
    then: after a rate limit, a 429, a network error or a 5xx."""

    outcome: str  # sent, failed, skipped, retry, rate_limited, not_due, done, busy, missing
    retry_in: float | None = None


def backoff_seconds(attempts: int) -> int:
    """Wait after the ``attempts``-th failed call: 2, 4, 8, … s, capped at 300 s."""
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))


def alert_deliver(*, alert_id: int) -> Delivery:
    """Send one alert to its member's Telegram chat, and mark it sent exactly once.

    Rate limits (1/s per chat, 30/s overall, across processes) are checked before the
    claim; when limited, the row stays pending and ``retry_in`` says when to come back.
    The claim is a conditional update (pending or lease-expired sending → sending, with a
    new claim id), so a duplicated task, the sweeper and a redelivered message send once;
    only the claim's holder marks the outcome.

    Residual risk: Telegram has no idempotency key. A worker that dies after Telegram
    accepted the message but before the UPDATE to sent leaves the row "sending"; once
    its lease (60 s) ends, the sweeper sends it again and the member gets it twice. The
    row is marked sent in the statement right after the 200 to keep that window short.

    Failures: 400/403 (and any other 4xx) → failed, never retried; 429 → retried after
    ``parameters.retry_after`` (and the chat held as long); network errors and 5xx →
    retried with backoff; after MAX_ATTEMPTS calls → failed, "retries_exhausted". A
    member with no telegram_id, or no bot token configured → skipped. Each reason is on
    the row (``failure_reason``, ``last_error``) for the admin.
    """
    now = timezone.now()
    alert = Alert.objects.select_related("user").filter(pk=alert_id).first()
    if alert is None:
        return Delivery("missing")
    refusal = _not_now(alert, now)
    if refusal is not None:
        return refusal
    chat_id = alert.user.telegram_id
    wait = telegram.send_slot_take(chat_id=chat_id)
    if wait:
        return Delivery("rate_limited", retry_in=wait)

    claim = uuid.uuid4()
    # The race: two tasks for one alert (a duplicate, the sweeper, an acks_late
    # redelivery). Only the UPDATE that still sees it undelivered and due takes it.
    taken = Alert.objects.filter(pk=alert.pk, status__in=UNDELIVERED, due_at__lte=now).update(
        status=Alert.Status.SENDING, claim=claim, due_at=now + SENDING_LEASE,
        attempts=F("attempts") + 1)
    if not taken:
        return Delivery("busy")
    mine = Alert.objects.filter(pk=alert.pk, status=Alert.Status.SENDING, claim=claim)
    return _send(alert, mine, attempts=alert.attempts + 1)


def _not_now(alert: Alert, now: datetime) -> Delivery | None:
    """Why this alert is not sent now (already delivered, not due, held by another worker,
    undeliverable), or None to go on. An undeliverable one is finished here."""
    if alert.status not in UNDELIVERED:
        return Delivery("done")
    if alert.due_at > now:
        if alert.status == Alert.Status.SENDING:
            return Delivery("busy")  # another worker holds it; its lease covers a crash
        # early: a duplicate of a scheduled retry, or a clock ahead of the scheduler's
        return Delivery("not_due", retry_in=(alert.due_at - now).total_seconds())
    if not alert.user.telegram_id:
        return _finish_unclaimed(alert, now, Alert.FailureReason.NO_TELEGRAM_ID,
                                 "the member has not linked Telegram")
    if not settings.TELEGRAM_BOT_TOKEN:
        return _finish_unclaimed(alert, now, Alert.FailureReason.BOT_NOT_CONFIGURED,
                                 "TELEGRAM_BOT_TOKEN is empty")
    if alert.attempts >= MAX_ATTEMPTS:  # a send that kept killing its worker
        return _finish_unclaimed(alert, now, Alert.FailureReason.RETRIES_EXHAUSTED,
                                 alert.last_error or "the sending worker never finished",
                                 status=Alert.Status.FAILED)
    return None


def _send(alert: Alert, mine: QuerySet[Alert], *, attempts: int) -> Delivery:
    """The claimed alert's one call to Telegram, and its outcome marked by the claim."""
    chat_id = alert.user.telegram_id
    try:
        message_id = telegram.send_message(chat_id=chat_id, text=alert.text,
                                           disable_notification=alert.silent)
    except telegram.TelegramRetryAfter as exc:
        telegram.chat_pause(chat_id=chat_id, seconds=exc.retry_after)
        return _retry_or_fail(mine, attempts, exc.retry_after, str(exc))
    except telegram.TelegramUnavailable as exc:
        return _retry_or_fail(mine, attempts, backoff_seconds(attempts), str(exc))
    except telegram.TelegramRejected as exc:
        reason = (Alert.FailureReason.BLOCKED if exc.error_code == 403
                  else Alert.FailureReason.REJECTED)
        if mine.update(status=Alert.Status.FAILED, failure_reason=reason,
                       last_error=str(exc)[:500], claim=None):
            metrics.alerts_failed_total.labels(reason=reason).inc()
            logger.warning("alert %s to user %s not delivered: %s", alert.pk, alert.user_id,
                           exc)
        return Delivery("failed")
    # Mark sent at once: the shorter this gap, the smaller the duplicate window above.
    if mine.update(status=Alert.Status.SENT, sent_at=timezone.now(),
                   telegram_message_id=message_id, last_error="", failure_reason="",
                   claim=None):
        metrics.alerts_sent_total.inc()
    return Delivery("sent")


def _retry_or_fail(mine: QuerySet[Alert], attempts: int, delay: float, error: str) -> Delivery:
    if attempts >= MAX_ATTEMPTS:
        reason = Alert.FailureReason.RETRIES_EXHAUSTED
        if mine.update(status=Alert.Status.FAILED, failure_reason=reason,
                       last_error=error[:500], claim=None):
            metrics.alerts_failed_total.labels(reason=reason).inc()
        return Delivery("failed")
    if not mine.update(status=Alert.Status.PENDING, last_error=error[:500], claim=None,
                       due_at=timezone.now() + timedelta(seconds=delay)):
        return Delivery("busy")  # our lease was taken over: the new holder decides
    return Delivery("retry", retry_in=float(delay))


def _finish_unclaimed(alert: Alert, now: datetime, reason: str, error: str, *,
                      status: str = Alert.Status.SKIPPED) -> Delivery:
    """Give up on an alert without calling Telegram, if it is still undelivered and due
    (the same guard as the claim, so a concurrent sender wins)."""
    if Alert.objects.filter(pk=alert.pk, status__in=UNDELIVERED, due_at__lte=now).update(
            status=status, failure_reason=reason, last_error=error[:500], claim=None):
        metrics.alerts_failed_total.labels(reason=reason).inc()
        return Delivery(str(status))
    return Delivery("busy")


def alerts_sweep(*, older_than: timedelta = SWEEP_AFTER, limit: int = SWEEP_BATCH) -> int:
    """Re-enqueue alerts whose task was lost: pending and due for ``older_than``, or
    sending with a lease that ended ``older_than`` ago (a worker died). Returns how many.
    A re-enqueued alert whose task was only slow is still sent once (the claim)."""
    cutoff = timezone.now() - older_than
    ids = list(Alert.objects.filter(status__in=UNDELIVERED, due_at__lte=cutoff)
               .order_by("due_at").values_list("pk", flat=True)[:limit])
    for alert_id in ids:
        _delivery_schedule(alert_id)
    if ids:
        logger.info("alerts_sweep: re-enqueued %s alerts", len(ids))
    return len(ids)


def alerts_requeue(*, alert_ids: list[int]) -> int:
    """Send failed or skipped alerts again (the admin's action, e.g. once a member has
    unblocked the bot): back to pending with a fresh attempt count. Returns how many."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(Alert.objects.select_for_update().filter(
            pk__in=alert_ids, status__in=[Alert.Status.FAILED, Alert.Status.SKIPPED])
            .values_list("pk", flat=True))
        Alert.objects.filter(pk__in=ids).update(
            status=Alert.Status.PENDING, attempts=0, failure_reason="", due_at=now)
        for alert_id in ids:
            transaction.on_commit(partial(_delivery_schedule, alert_id), robust=True)
    return len(ids)


# --- preferences ---
def alert_preferences_get(*, user: User) -> dict[str, str]:
    """Every kind with the member's mode ("on" where they never chose). One query."""
    chosen = dict(AlertPreference.objects.filter(user=user).values_list("kind", "mode"))
    return {kind: chosen.get(kind, AlertPreference.Mode.ON.value) for kind in Alert.Kind.values}


@transaction.atomic
def alert_preferences_set(*, user: User, modes: dict[str, str]) -> dict[str, str]:
    """Set the member's mode for each kind in ``modes`` (others keep theirs); returns
    every kind's mode. Raises ValueError for an unknown kind or mode (the API validates
    first). One upsert."""
    unknown = ({k for k in modes if k not in Alert.Kind.values}
               | {m for m in modes.values() if m not in AlertPreference.Mode.values})
    if unknown:
        raise ValueError(f"unknown kinds or modes: {sorted(unknown)}")
    AlertPreference.objects.bulk_create(
        [AlertPreference(user=user, kind=kind, mode=mode) for kind, mode in modes.items()],
        update_conflicts=True, unique_fields=["user", "kind"],
        update_fields=["mode", "updated_at"])
    return alert_preferences_get(user=user)
