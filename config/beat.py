"""One beat at a time: Celery beat's database scheduler behind a lease.

Two beats would send every schedule twice (a second one started by mistake doubled every
tick once; row locks absorbed it). ``SingletonScheduler`` renews a lease in the database
(``positions.services.beat_lease_hold``) on every tick and sends only while it holds it;
a second beat idles, says why in its log once a minute, and takes over within
``LEASE_SECONDS`` if the first one dies. The lease is given up at a clean shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

from django.db import DatabaseError, close_old_connections, connection
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
IDLE_SECONDS = 5.0  # how often an idle beat looks at the lease again
LOG_EVERY_SECONDS = 60.0


class SingletonScheduler(DatabaseScheduler):
    """``django_celery_beat``'s DatabaseScheduler that sends only while holding the lease."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._idle_logged_at = 0.0
        super().__init__(*args, **kwargs)

    def _holds_lease(self) -> bool:
        from positions.services import beat_lease_hold

        # Beat serves no requests, so nothing else drops a connection the database broke
        # (a PostgreSQL restart): do it here, or it would stay broken for good.
        close_old_connections()
        try:
            return beat_lease_hold(holder=self.holder, seconds=LEASE_SECONDS)
        except DatabaseError:
            connection.close()
            logger.warning("beat: the database is unreachable; not sending until it is back")
            return False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._holds_lease():
            now = time.monotonic()
            if now - self._idle_logged_at >= LOG_EVERY_SECONDS:
                self._idle_logged_at = now
                logger.warning("beat %s idles: another beat holds the lease (only one beat "
                               "may send; this one takes over if that one stops)", self.holder)
            return IDLE_SECONDS
        return float(super().tick(*args, **kwargs))

    def close(self) -> None:
        from positions.services import beat_lease_release

        try:
            beat_lease_release(holder=self.holder)
        except DatabaseError:
            logger.warning("beat: could not give the lease up; it expires by itself")
        super().close()
