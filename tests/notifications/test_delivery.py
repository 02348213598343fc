"""Alert delivery against a local fake Telegram Bot API (pytest-httpserver): the outbox
written in the event's transaction, exactly-once sending, Telegram's errors and 429s, the
rate limits and the sweeper. Nothing sleeps: a retry is asserted by the countdown it asks
for, and the passage of time by moving the row's due time back. Tasks are called as a
worker calls them; what they queue is recorded at ``apply_async`` (the broker's door)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import REGISTRY
from werkzeug import Response

from notifications import services, telegram
from notifications.models import Alert, AlertPreference
from notifications.services import alert_deliver, alert_enqueue
from notifications.tasks import deliver_alert
from tests.factories import TradingAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "123456:TEST-token"
SEND_PATH = f"/bot{TOKEN}/sendMessage"


@pytest.fixture(autouse=True)
def _own_rate_keys(monkeypatch):
    # Rate-limit keys of this test only: no clash with other tests or runs on the same Redis.
    monkeypatch.setattr(telegram, "RATE_KEY_PREFIX", f"test:{uuid.uuid4().hex}")


@pytest.fixture
def bot(settings, httpserver):
    settings.TELEGRAM_BOT_TOKEN = TOKEN
    settings.TELEGRAM_API_BASE_URL = httpserver.url_for("").rstrip("/")
    return httpserver


@pytest.fixture
def eager():
    """Celery runs tasks in-process, as a worker would, when they are queued."""
    from config.celery import app

    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def scheduled(monkeypatch):
    """(alert ids, countdown) of each deliver_alert queued, retries included."""
    calls: list[tuple[list, float | None]] = []

    def record(args=None, kwargs=None, countdown=None, **options):
        calls.append((list(args or ()), countdown))

    monkeypatch.setattr(deliver_alert, "apply_async", record)
    return calls


@pytest.fixture
def chat_member(member):
    member.telegram_id = 5550001
    member.save(update_fields=["telegram_id"])
    return member


def ok(message_id: int = 42) -> dict:
    return {"ok": True, "result": {"message_id": message_id, "chat": {"id": 5550001},
                                   "date": 1700000000, "text": "…"}}


def error(code: int, description: str, **parameters) -> dict:
    body = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def sent_bodies(httpserver) -> list[dict]:
    return [request.get_json() for request, _ in httpserver.log]


def time_passes(alert: Alert, seconds: int) -> None:
    """What ``seconds`` of waiting would do: the row's due time and the chat's hold pass."""
    Alert.objects.filter(pk=alert.pk).update(due_at=F("due_at") - timedelta(seconds=seconds))
    cache.delete(telegram._chat_key(alert.user.telegram_id))


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def enqueue(user, kind: str = Alert.Kind.DRAWDOWN_WARNING, text: str = "Drawdown 16 %",
            **kwargs) -> Alert:
    alert = alert_enqueue(user=user, kind=kind, text=text, **kwargs)
    assert alert is not None
    return alert


# --- the outbox: written with the event, sent after its commit ---
def test_committed_alert_is_sent_by_the_task(bot, eager, chat_member,
                                             django_capture_on_commit_callbacks):
    account = TradingAccountFactory(user=chat_member)
    bot.expect_oneshot_request(SEND_PATH, method="POST").respond_with_json(ok(42))
    sent_before = counter("alerts_sent_total")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        alert = alert_enqueue(user=chat_member, kind=Alert.Kind.LIQUIDATION_DONE,
                              text="Closed 2 positions, P&L −1,250.00 USD", account=account,
                              payload={"positions": [{"ticket": "1"}, {"ticket": "2"}]})
        assert alert is not None
        assert bot.log == []  # nothing leaves before the commit
    assert len(callbacks) == 1
    assert sent_bodies(bot) == [{"chat_id": 5550001, "disable_notification": False,
                                 "text": "Closed 2 positions, P&L −1,250.00 USD"}]
    alert.refresh_from_db()
    assert (alert.status, alert.attempts, alert.telegram_message_id) == ("sent", 1, 42)
    assert alert.sent_at is not None and alert.account == account
    assert alert.payload == {"positions": [{"ticket": "1"}, {"ticket": "2"}]}
    assert counter("alerts_sent_total") == sent_before + 1


def test_rollback_writes_and_sends_nothing(bot, eager, chat_member,
                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            alert_enqueue(user=chat_member, kind=Alert.Kind.CLOSE_FAILED, text="close failed")
            raise RuntimeError("the event failed")
    assert callbacks == []
    assert not Alert.objects.exists()
    assert bot.log == []


def test_a_too_long_text_is_cut_to_telegrams_limit(chat_member):
    alert = enqueue(chat_member, text="x" * 5000)
    assert len(alert.text) == 4096 and alert.text.endswith("…")
    # Telegram counts UTF-16 units: an emoji outside the BMP counts 2
    assert telegram.text_fit("😀" * 3000) == "😀" * 2047 + "…"
    assert telegram.text_fit("short") == "short"


def test_an_unknown_kind_is_a_programming_error(chat_member):
    with pytest.raises(ValueError, match="unknown alert kind"):
        alert_enqueue(user=chat_member, kind="nope", text="x")


# --- preferences at delivery ---
def test_silent_is_sent_without_sound(bot, chat_member):
    AlertPreference.objects.create(user=chat_member, kind=Alert.Kind.MARKET, mode="silent")
    bot.expect_oneshot_request(SEND_PATH, method="POST").respond_with_json(ok())
    alert = enqueue(chat_member, kind=Alert.Kind.MARKET, text="EURUSD gapped 1.6 %")
    assert alert_deliver(alert_id=alert.pk).outcome == "sent"
    assert sent_bodies(bot)[0]["disable_notification"] is True


def test_off_writes_no_row(bot, chat_member, django_capture_on_commit_callbacks):
    AlertPreference.objects.create(user=chat_member, kind=Alert.Kind.ACCOUNT_STALE, mode="off")
    with django_capture_on_commit_callbacks() as callbacks:
        assert alert_enqueue(user=chat_member, kind=Alert.Kind.ACCOUNT_STALE,
                             text="stale") is None
    assert callbacks == [] and not Alert.objects.exists()


# --- Telegram's answers ---
def test_429_retries_after_telegrams_retry_after(bot, chat_member, scheduled):
    bot.expect_ordered_request(SEND_PATH, method="POST").respond_with_json(
        error(429, "Too Many Requests: retry after 7", retry_after=7), status=429)
    bot.expect_ordered_request(SEND_PATH, method="POST").respond_with_json(ok(43))
    alert = enqueue(chat_member)

    assert deliver_alert(alert.pk) == "retry"
    assert scheduled == [([alert.pk], 7)]  # the task re-scheduled itself in retry_after
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == ("pending", 1)
    assert "429" in alert.last_error
    assert timedelta(seconds=6) < alert.due_at - timezone.now() <= timedelta(seconds=7)

    # the chat is held as long: another alert to it waits too, without calling Telegram
    other = enqueue(chat_member, kind=Alert.Kind.MARKET, text="other")
    held = alert_deliver(alert_id=other.pk)
    assert held.outcome == "rate_limited" and 6 < held.retry_in <= 7
    # a copy of the task that runs early does not send before the due time either
    early = alert_deliver(alert_id=alert.pk)
    assert early.outcome == "not_due" and 6 < early.retry_in <= 7
    assert len(bot.log) == 1

    time_passes(alert, 7)
    assert deliver_alert(alert.pk) == "sent"
    alert.refresh_from_db()
    assert (alert.status, alert.attempts, alert.telegram_message_id) == ("sent", 2, 43)
    assert alert.last_error == ""
    bot.check_assertions()


@pytest.mark.parametrize("status", [500, 502])
def test_5xx_retries_with_backoff_then_sends(bot, chat_member, scheduled, status):
    bot.expect_ordered_request(SEND_PATH, method="POST").respond_with_response(
        Response("<html>Bad Gateway</html>", status=status, content_type="text/html"))
    bot.expect_ordered_request(SEND_PATH, method="POST").respond_with_json(
        error(500, "Internal Server Error"), status=500)
    bot.expect_ordered_request(SEND_PATH, method="POST").respond_with_json(ok())
    alert = enqueue(chat_member)

    assert deliver_alert(alert.pk) == "retry"
    time_passes(alert, 2)
    assert deliver_alert(alert.pk) == "retry"
    assert scheduled == [([alert.pk], 2), ([alert.pk], 4)]  # backoff: 2 s, then 4 s
    time_passes(alert, 4)
    assert alert_deliver(alert_id=alert.pk).outcome == "sent"
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == ("sent", 3)
    bot.check_assertions()


def test_a_network_error_is_retried(settings, chat_member):
    settings.TELEGRAM_BOT_TOKEN = TOKEN
    settings.TELEGRAM_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens: refused
    alert = enqueue(chat_member)
    result = alert_deliver(alert_id=alert.pk)
    assert (result.outcome, result.retry_in) == ("retry", 2.0)
    alert.refresh_from_db()
    assert alert.status == "pending" and "ConnectError" in alert.last_error
    assert TOKEN not in alert.last_error


def test_backoff_is_capped():
    assert [services.backoff_seconds(n) for n in range(1, 11)] == [
        2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_retries_exhausted_fail_with_the_reason(bot, chat_member, monkeypatch):
    monkeypatch.setattr(services, "MAX_ATTEMPTS", 2)
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(
        error(502, "Bad Gateway"), status=502)
    alert = enqueue(chat_member)
    failed_before = counter("alerts_failed_total", reason="retries_exhausted")
    assert alert_deliver(alert_id=alert.pk).outcome == "retry"
    time_passes(alert, 2)
    assert alert_deliver(alert_id=alert.pk) == services.Delivery("failed")
    alert.refresh_from_db()
    assert (alert.status, alert.failure_reason, alert.attempts) == (
        "failed", "retries_exhausted", 2)
    assert "502" in alert.last_error
    assert counter("alerts_failed_total", reason="retries_exhausted") == failed_before + 1
    assert len(bot.log) == 2


@pytest.mark.parametrize(("status", "description", "reason"), [
    (400, "Bad Request: chat not found", "rejected"),
    (403, "Forbidden: bot was blocked by the user", "blocked"),
])
def test_400_and_403_fail_with_the_reason_and_are_not_retried(bot, chat_member, scheduled,
                                                              status, description, reason):
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(
        error(status, description), status=status)
    alert = enqueue(chat_member)
    failed_before = counter("alerts_failed_total", reason=reason)

    assert deliver_alert(alert.pk) == "failed"
    alert.refresh_from_db()
    assert (alert.status, alert.failure_reason) == ("failed", reason)
    assert description in alert.last_error
    assert counter("alerts_failed_total", reason=reason) == failed_before + 1
    assert scheduled == []
    # a second run (a duplicate, the sweeper) does not call Telegram again
    assert deliver_alert(alert.pk) == "done"
    assert len(bot.log) == 1


def test_a_member_without_telegram_is_skipped(bot, member):
    alert = enqueue(member)
    assert alert_deliver(alert_id=alert.pk).outcome == "skipped"
    alert.refresh_from_db()
    assert (alert.status, alert.failure_reason, alert.attempts) == (
        "skipped", "no_telegram_id", 0)
    assert bot.log == []


def test_no_bot_token_is_skipped(settings, httpserver, chat_member):
    settings.TELEGRAM_BOT_TOKEN = ""
    alert = enqueue(chat_member)
    assert alert_deliver(alert_id=alert.pk).outcome == "skipped"
    alert.refresh_from_db()
    assert alert.failure_reason == "bot_not_configured"
    assert httpserver.log == []


def test_the_admin_can_send_a_failed_alert_again(bot, chat_member, scheduled,
                                                 django_capture_on_commit_callbacks):
    bot.expect_ordered_request(SEND_PATH, method="POST").respond_with_json(
        error(403, "Forbidden: bot was blocked by the user"), status=403)
    bot.expect_ordered_request(SEND_PATH, method="POST").respond_with_json(ok())
    alert = enqueue(chat_member)
    assert alert_deliver(alert_id=alert.pk).outcome == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        assert services.alerts_requeue(alert_ids=[alert.pk]) == 1
    assert scheduled == [([alert.pk], None)]
    time_passes(alert, 1)
    assert deliver_alert(alert.pk) == "sent"
    alert.refresh_from_db()
    assert (alert.status, alert.attempts, alert.failure_reason) == ("sent", 1, "")
    bot.check_assertions()


# --- exactly once ---
def test_a_duplicated_task_sends_once(bot, chat_member):
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(ok())
    alert = enqueue(chat_member)
    assert deliver_alert(alert.pk) == "sent"
    assert deliver_alert(alert.pk) == "done"
    assert len(bot.log) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_send_once(bot, chat_member, monkeypatch):
    # Limits aside (they would serialise the callers by themselves): the claim alone decides.
    monkeypatch.setattr(telegram, "send_slot_take", lambda *, chat_id: 0.0)
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(ok())
    alert = enqueue(chat_member)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def deliver():
        try:
            barrier.wait()
            outcomes.append(alert_deliver(alert_id=alert.pk).outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("sent") == 1, outcomes
    assert len(bot.log) == 1
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == ("sent", 1)


def test_a_live_lease_is_respected_and_an_expired_one_taken_over(bot, chat_member):
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(ok())
    alert = enqueue(chat_member)
    # a worker claimed it and is sending (or died while sending)
    Alert.objects.filter(pk=alert.pk).update(status="sending", claim=uuid.uuid4(), attempts=1,
                                             due_at=timezone.now() + services.SENDING_LEASE)
    assert alert_deliver(alert_id=alert.pk).outcome == "busy"
    assert bot.log == []
    # its lease ran out: the worker died; the alert is sent (perhaps twice: documented)
    time_passes(alert, 61)
    assert alert_deliver(alert_id=alert.pk).outcome == "sent"
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == ("sent", 2)


# --- rate limits ---
def test_a_second_alert_to_one_chat_in_the_same_second_is_rescheduled(bot, chat_member,
                                                                     scheduled):
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(ok())
    first = enqueue(chat_member, text="first")
    second = enqueue(chat_member, kind=Alert.Kind.LIQUIDATION_COUNTDOWN, text="second")
    assert deliver_alert(first.pk) == "sent"

    assert deliver_alert(second.pk) == "rate_limited"
    [(ids, countdown)] = scheduled
    assert ids == [second.pk] and 0 < countdown <= 1  # back when the chat's second is over
    second.refresh_from_db()
    assert (second.status, second.attempts) == ("pending", 0)  # a wait is not an attempt
    assert [b["text"] for b in sent_bodies(bot)] == ["first"]

    cache.delete(telegram._chat_key(chat_member.telegram_id))  # the second is over
    assert alert_deliver(alert_id=second.pk).outcome == "sent"
    assert [b["text"] for b in sent_bodies(bot)] == ["first", "second"]


def test_thirty_per_second_overall(bot, monkeypatch):
    # one fixed instant, so the three sends fall in the same second for sure
    monkeypatch.setattr(telegram, "time", SimpleNamespace(time=lambda: 1_900_000_000.25))
    monkeypatch.setattr(telegram, "GLOBAL_PER_SECOND", 2)
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(ok())
    alerts = [enqueue(UserFactory(telegram_id=7770000 + n)) for n in range(3)]
    results = [alert_deliver(alert_id=a.pk) for a in alerts]
    assert [r.outcome for r in results] == ["sent", "sent", "rate_limited"]
    assert results[2].retry_in == 0.75  # the rest of that second
    assert len(bot.log) == 2
    # the third chat was not charged for the message that did not go
    assert cache.get(telegram._chat_key(7770002)) is None


# --- the sweeper ---
def test_the_sweeper_sends_alerts_whose_task_was_lost(bot, eager, chat_member):
    bot.expect_request(SEND_PATH, method="POST").respond_with_json(ok())
    lost = enqueue(chat_member, text="lost")  # its on_commit never ran: the task is lost
    fresh = enqueue(UserFactory(telegram_id=7771000), text="fresh")
    Alert.objects.filter(pk=lost.pk).update(due_at=timezone.now() - timedelta(seconds=120))

    assert services.alerts_sweep() == 1
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert (lost.status, fresh.status) == ("sent", "pending")
    assert [b["text"] for b in sent_bodies(bot)] == ["lost"]
    assert services.alerts_sweep() == 0
