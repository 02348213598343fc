"""kombu's Redis transport, surviving a broker restart with unacknowledged messages.

With ``acks_late`` tasks, a worker holds messages it has not acknowledged yet (running, or
waiting for their countdown). When Redis goes away, kombu (5.7.0) closes the channel and
tries to put those messages back at once, through a connection that is already gone: an
``AttributeError`` in ``_connparams`` ("'NoneType' object has no attribute 'hostname'")
ends the worker for good instead of letting it reconnect (``tests/e2e/
test_redis_restart.py`` shows both). Here that restore is skipped when the connection is
gone: the messages stay in Redis's unacked set and come back after the visibility timeout
(or are gone with a Redis that keeps nothing, which the guards' sweeper covers).

Selected by ``CELERY_BROKER_TRANSPORT`` for ``redis://`` brokers (config/settings.py).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client: Any = None) -> Any:
        if client is None and getattr(self.channel.connection, "client", None) is None:
            logger.warning("broker connection gone with %d unacknowledged message(s): they "
                           "return after the visibility timeout", len(self._delivered))
            self._delivered.clear()
            return None
        return super().restore_unacked(client)


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel
