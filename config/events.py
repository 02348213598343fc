"""The alert port: how a pipeline step tells a person something, without importing the
app that delivers it.

The steps (``positions`` sync, ``reconciliation``, ``guards``) sit below ``notifications``
in the dependency order, so they cannot call its outbox. They call ``alert_raise``; the
``notifications`` app connects its outbox writer (``notifications.services.alert_enqueue``)
to ``alert_raised`` when it starts (``NotificationsConfig.ready``).

Django signals run their receivers synchronously, in the sender's thread and transaction:
the outbox row is written in the event's own transaction, so a rollback loses both the
event and its alert, and a commit keeps both (the transactional outbox). A receiver that
raises propagates to the caller, as a direct call would.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.dispatch import Signal

# Sent with: user (accounts.User), kind (notifications Alert.Kind value), text (str),
# payload (dict | None, JSON-able), account (TradingAccount | None).
alert_raised = Signal()


def alert_raise(*, user: Any, kind: str, text: str, payload: dict | None = None,
                account: Any = None) -> None:
    """Put one alert for ``user`` in the outbox, in the current transaction.

    ``kind`` is a ``notifications.models.Alert.Kind`` value; ``text`` plain text. Raises
    ImproperlyConfigured when no outbox is connected (the notifications app is not
    installed), so an alert is never dropped in silence; the receiver's own errors
    (ValueError for an unknown kind or an empty text) propagate.
    """
    answered = alert_raised.send(sender=None, user=user, kind=kind, text=text,
                                 payload=payload, account=account)
    if not answered:
        raise ImproperlyConfigured("no alert outbox is connected to config.events.alert_raised "
                                   "(is the notifications app installed?)")
