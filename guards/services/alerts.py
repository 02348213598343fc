"""Guard alerts: the audit row (``GuardAlert``) and the member's alert, raised in the
same transaction through ``config.events.alert_raise`` (the notifications outbox)."""


from __future__ import annotations

from datetime import datetime

from accounts.models import TradingAccount
from config.events import alert_raise
from guards.models import (
    GuardAlert,
)

ALERT_KINDS: dict[str, str] = {  # GuardAlert kind → notifications Alert kind
    GuardAlert.Kind.LIQUIDATION_ABORTED.value: "liquidation_cancelled",
    GuardAlert.Kind.READ_ONLY_NOT_CLOSED.value: "read_only",
}


def guard_alerts_save(alerts: list[GuardAlert]) -> None:
    """Store guard alerts and put each in its member's Telegram outbox. Call inside the
    event's transaction: a rollback loses both, a commit keeps both."""
    if not alerts:
        return
    GuardAlert.objects.bulk_create(alerts)
    owners = {a.pk: a for a in TradingAccount.objects.select_related("user").filter(
        pk__in={alert.account_id for alert in alerts})}
    for alert in alerts:
        account = owners[alert.account_id]
        alert_raise(user=account.user, account=account,
                    kind=ALERT_KINDS.get(str(alert.kind), str(alert.kind)),
                    text=f"{account.login}@{account.server}: {alert.message}",
                    payload=alert.payload)


def guard_alert(account_id: int, kind: str, message: str, now: datetime,
           payload: dict | None = None) -> GuardAlert:
    return GuardAlert(account_id=account_id, kind=kind, message=message[:500],
                      payload=payload or {}, created_at=now)
